import { UsageError } from "./exit.ts";

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration such as `500ms`, `30s`, `5m`, `2h` or `7d`; a bare number is milliseconds.
 * @throws {UsageError} naming the option when the text is not a duration.
 */
export function parseDuration(text: string, option: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`Expected ${option} to be a duration like 500ms, 30s, 5m, 2h or 7d, got "${text}"`);
  const ms = Math.round(Number(m[1]) * UNITS[(m[2] ?? "ms").toLowerCase()]!);
  if (!Number.isSafeInteger(ms)) throw new UsageError(`${option} is too large: "${text}"`);
  return ms;
}

/**
 * Parses an integer option; `-1` is accepted where `allowUnlimited` (meaning "no bound").
 * @throws {UsageError} naming the option.
 */
export function parseInteger(text: string, option: string, min: number, allowUnlimited = false): number {
  const n = Number(text);
  if (allowUnlimited && n === -1) return -1;
  if (!/^-?\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) {
    const expect = allowUnlimited ? `an integer >= ${min}, or -1 for no bound` : `an integer >= ${min}`;
    throw new UsageError(`Expected ${option} to be ${expect}, got "${text}"`);
  }
  return n;
}

/** `1500` → `1.5s`, `90000` → `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${Number.isInteger(s) ? s : s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${Math.round(s % 60) ? `${Math.round(s % 60)}s` : ""}`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h${m % 60 ? `${m % 60}m` : ""}`;
  return `${Math.floor(h / 24)}d${h % 24 ? `${h % 24}h` : ""}`;
}

/** How long ago `d` was, e.g. `3m ago`. */
export function ago(d: Date, now = Date.now()): string {
  const ms = Math.max(0, now - d.getTime());
  if (ms < 1000) return "just now";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ago`;
  return `${Math.floor(h / 24)}d ago`;
}

/** `123456` → `120.6 KiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** A bound that may be -1 (unbounded). */
export function formatLimit(n: number): string {
  return n < 0 ? "none" : String(n);
}

/** Shortens `s` to at most `max` characters, marking the cut. */
export function truncate(s: string, max: number): string {
  s = clean(s);
  return s.length > max ? `${s.slice(0, Math.max(1, max - 1))}…` : s;
}

/**
 * Renders rows as an aligned text table with a header line. Numeric columns
 * (`right`) are right-aligned; the last column is not padded.
 */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, right: ReadonlySet<number> = new Set()): string {
  rows = rows.map((r) => r.map(clean));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => {
        if (i === cells.length - 1 && !right.has(i)) return c;
        return right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!);
      })
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/**
 * Characters a terminal may act on: C0 controls but tab and newline, DEL, C1 controls (0x9b is
 * CSI on some terminals), and the bidirectional overrides that reorder what is shown.
 */
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** The same, plus tab and newline: one field must stay on its line. */
const UNSAFE_FIELD = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

const escapeChar = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * One field from the server (a job id, a header, an error message) made safe to print: every
 * control character is shown as `\uXXXX` instead of reaching the terminal, newlines included.
 */
export function clean(s: string): string {
  return s.replace(UNSAFE_FIELD, escapeChar);
}

/**
 * The last line of defence before the terminal: control characters other than newline and tab
 * are shown as `\uXXXX`. Harmless for JSON text (those characters may only appear inside its
 * strings, where the escape means the same character).
 */
export function safeText(s: string): string {
  return s.replace(UNSAFE, escapeChar);
}
