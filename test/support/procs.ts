import { spawn, type ChildProcess } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const fixtures = join(dirname(fileURLToPath(import.meta.url)), "..", "fixtures");

export interface ProcEvent {
  pid: number;
  ev: string;
  id?: string;
  attempt?: number;
  isolated?: boolean;
  /** When a handler started (ms since the epoch, the child's clock). */
  t?: number;
  reason?: string;
  message?: string;
}

/** A child process running test/fixtures/<script>, its JSON-line events collected (bounded by the test's job count). */
export class FixtureProcess {
  readonly proc: ChildProcess;
  readonly events: ProcEvent[] = [];
  readonly exited: Promise<number | null>;
  stderr = "";
  readonly #listeners = new Set<(e: ProcEvent) => void>();

  constructor(script: string, env: Record<string, string>, sink?: (e: ProcEvent) => void) {
    this.proc = spawn(process.execPath, [join(fixtures, script)], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.proc.stderr!.on("data", (b: Buffer) => {
      this.stderr = (this.stderr + b.toString()).slice(-10_000);
    });
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      let e: ProcEvent;
      try {
        e = JSON.parse(line) as ProcEvent;
      } catch {
        return;
      }
      this.events.push(e);
      sink?.(e);
      for (const l of this.#listeners) l(e);
    });
    this.exited = new Promise((resolve) => this.proc.once("exit", (code) => resolve(code)));
  }

  get pid(): number {
    return this.proc.pid!;
  }

  /**
   * Resolves with the first event matching `pred` (deadline `ms`). The default is a safety bound
   * for a process starting: loading the library from source alone took 5-11 s with several
   * fixtures starting at once on a loaded 2-core machine (what CI is), so 20 s was too tight.
   */
  waitFor(pred: (e: ProcEvent) => boolean, what: string, ms = 60_000): Promise<ProcEvent> {
    const found = this.events.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#listeners.delete(l);
        reject(new Error(`timed out waiting for ${what} from pid ${this.pid}; stderr:\n${this.stderr}`));
      }, ms);
      const l = (e: ProcEvent): void => {
        if (pred(e)) {
          clearTimeout(t);
          this.#listeners.delete(l);
          resolve(e);
        }
      };
      this.#listeners.add(l);
      void this.exited.then((code) => {
        if (this.#listeners.has(l)) {
          clearTimeout(t);
          this.#listeners.delete(l);
          reject(new Error(`pid ${this.pid} exited (${code}) before ${what}; stderr:\n${this.stderr}`));
        }
      });
    });
  }

  /** kill -9, and wait for the exit. */
  async kill9(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill("SIGKILL");
    await this.exited;
  }

  /** SIGTERM (graceful), bounded by a SIGKILL after `ms`. */
  async terminate(ms = 10_000): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const t = setTimeout(() => this.proc.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}

/**
 * Keeps `n` fixture processes running, as a process supervisor would: each one that dies is
 * replaced, at most `maxRestarts` times in all. `stop()` ends them all (SIGTERM, then SIGKILL).
 */
export class Supervisor {
  readonly #script: string;
  readonly #env: Record<string, string>;
  readonly #sink: (e: ProcEvent) => void;
  readonly #maxRestarts: number;
  readonly live = new Set<FixtureProcess>();
  restarts = 0;
  #stopped = false;

  constructor(n: number, script: string, env: Record<string, string>, sink: (e: ProcEvent) => void, maxRestarts: number) {
    this.#script = script;
    this.#env = env;
    this.#sink = sink;
    this.#maxRestarts = maxRestarts;
    for (let i = 0; i < n; i++) this.#spawn();
  }

  #spawn(): void {
    const p = new FixtureProcess(this.#script, this.#env, this.#sink);
    this.live.add(p);
    void p.exited.then(() => {
      this.live.delete(p);
      if (this.#stopped || this.restarts >= this.#maxRestarts) return;
      this.restarts++;
      this.#spawn();
    });
  }

  /** Resolves once every process running now has said `ready` (each within `ms`). */
  async ready(ms?: number): Promise<void> {
    await Promise.all([...this.live].map((p) => p.waitFor((e) => e.ev === "ready", "ready", ms)));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all([...this.live].map((p) => p.terminate()));
  }
}
