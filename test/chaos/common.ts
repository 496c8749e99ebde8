/** Pieces the chaos scenarios share. */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync } from "node:fs";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";

/** A connection that rides out server restarts and failovers (reconnects forever, quickly). */
export function connectChaos(servers: string, extra: Record<string, unknown> = {}): Promise<NatsConnection> {
  return connect({
    servers: servers.split(","),
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 100,
    ...extra,
  });
}

/**
 * Completed job ids recorded by worker processes, one file per worker generation in `dir`, one
 * id per line. `poll()` reads what was appended since the last call (complete lines only).
 * Memory is bounded by the scenario's job count.
 */
export class CompletionFiles {
  readonly ids = new Set<string>();
  /** Lines read: completions including duplicates. */
  records = 0;
  /** Longest time with jobs outstanding and no new completion. */
  maxGapMs = 0;
  readonly #dir: string;
  readonly #offsets = new Map<string, number>();
  #lastNewAt = Date.now();

  constructor(dir: string) {
    this.#dir = dir;
  }

  get duplicates(): number {
    return this.records - this.ids.size;
  }

  /** Reads new lines; `outstanding` says whether jobs are waiting (a gap only counts then). */
  poll(outstanding: boolean): void {
    if (!existsSync(this.#dir)) return;
    let fresh = false;
    for (const f of readdirSync(this.#dir)) {
      if (!f.endsWith(".ids")) continue;
      const path = join(this.#dir, f);
      const fd = openSync(path, "r");
      try {
        const from = this.#offsets.get(path) ?? 0;
        const size = fstatSync(fd).size;
        if (size <= from) continue;
        const buf = Buffer.alloc(size - from);
        readSync(fd, buf, 0, buf.length, from);
        const end = buf.lastIndexOf(10);
        if (end < 0) continue;
        this.#offsets.set(path, from + end + 1);
        for (const id of buf.subarray(0, end).toString("utf8").split("\n")) {
          if (!id) continue;
          this.records++;
          if (!this.ids.has(id)) {
            this.ids.add(id);
            fresh = true;
          }
        }
      } finally {
        closeSync(fd);
      }
    }
    const now = Date.now();
    if (fresh && outstanding) this.maxGapMs = Math.max(this.maxGapMs, now - this.#lastNewAt);
    if (fresh || !outstanding) this.#lastNewAt = now;
  }
}

/** Ids in `acked` that are missing from `done`, first few for the message. */
export function missing(acked: Iterable<string>, done: Set<string>): string[] {
  const out: string[] = [];
  for (const id of acked) if (!done.has(id)) out.push(id);
  return out;
}
