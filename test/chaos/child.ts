/** Child processes running test/fixtures/chaos-*.ts, owned (and killed) by PID. */
import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export interface ChildEvent {
  pid: number;
  ev: string;
  [k: string]: unknown;
}

export class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<void>;
  /** Last events only (bounded): enough to wait on and to debug. */
  readonly events: ChildEvent[] = [];
  stderr = "";
  readonly #listeners = new Set<(e: ChildEvent) => void>();

  constructor(script: string, env: Record<string, string>, onEvent?: (e: ChildEvent) => void, nodeArgs: string[] = []) {
    this.proc = spawn(process.execPath, [...nodeArgs, join(fixtures, script)], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    this.proc.stderr!.on("data", (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-8_000);
    });
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      let e: ChildEvent;
      try {
        e = JSON.parse(line) as ChildEvent;
      } catch {
        return;
      }
      this.events.push(e);
      if (this.events.length > 200) this.events.splice(0, 100);
      onEvent?.(e);
      for (const l of this.#listeners) l(e);
    });
    this.exited = new Promise((resolve) => this.proc.once("exit", () => resolve()));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** First event matching `pred`, deadline `ms`; fails early if the process exits. */
  waitFor(pred: (e: ChildEvent) => boolean, what: string, ms = 20_000): Promise<ChildEvent> {
    const hit = this.events.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const l = (e: ChildEvent): void => {
        if (!pred(e)) return;
        clearTimeout(t);
        this.#listeners.delete(l);
        resolve(e);
      };
      const t = setTimeout(() => {
        this.#listeners.delete(l);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} from pid ${this.pid}; stderr:\n${this.stderr}`));
      }, ms);
      this.#listeners.add(l);
      void this.exited.then(() => {
        if (!this.#listeners.delete(l)) return;
        clearTimeout(t);
        reject(new Error(`pid ${this.pid} exited before ${what}; stderr:\n${this.stderr}`));
      });
    });
  }

  /** kill -9 and wait for the exit. */
  async kill9(): Promise<void> {
    if (this.alive) this.proc.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM (graceful stop), escalated to SIGKILL after `ms`. */
  async terminate(ms = 10_000): Promise<void> {
    if (!this.alive) return;
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}
