import { isUtf8 } from "node:buffer";
import { thrownText } from "../natserr.ts";

/** @internal JSON encoding of payloads; `undefined` when the value cannot be encoded. */
export function encodePayload(data: unknown): string | undefined {
  const r = encodeJson(data);
  return typeof r === "string" ? r : undefined;
}

/** @internal Why a value is not JSON-encodable: a sentence for the user, and what was thrown. */
export interface Unencodable {
  readonly reason: string;
  readonly cause: unknown;
}

/**
 * @internal JSON encoding of a payload, or why it cannot be encoded: a BigInt, a circular
 * structure, nesting too deep for the encoder, a `toJSON` or getter that throws, or a value JSON
 * has no form for (undefined, a function, a symbol). The success path allocates nothing extra.
 */
export function encodeJson(data: unknown): string | Unencodable {
  let s: unknown;
  try {
    s = JSON.stringify(data);
  } catch (err) {
    return { reason: whyNotJson(err), cause: err };
  }
  if (typeof s === "string") return s;
  const kind = typeof data;
  const what =
    kind === "undefined" || kind === "function" || kind === "symbol"
      ? `it is ${kind === "undefined" ? "undefined" : `a ${kind}`}, which JSON has no form for`
      : "its toJSON() returned undefined";
  return { reason: what, cause: undefined };
}

function whyNotJson(err: unknown): string {
  try {
    return describeThrown(err);
  } catch {
    // `instanceof` itself throws for a Proxy whose getPrototypeOf trap throws
    return "encoding it threw a value that cannot be inspected";
  }
}

function describeThrown(err: unknown): string {
  if (err instanceof RangeError) return "it is nested too deeply for the JSON encoder (the call stack ran out)";
  const text = errorText(err);
  if (err instanceof TypeError && /BigInt/i.test(text)) return "it contains a BigInt, which JSON has no form for (send it as a string)";
  if (err instanceof TypeError && /circular/i.test(text)) return `it contains a circular reference (${firstLine(text)})`;
  return `encoding it threw: ${firstLine(text)}`;
}

/** The message of anything thrown, without throwing (a getter or Proxy may). */
function errorText(err: unknown): string {
  try {
    if (err instanceof Error) return String(err.message);
  } catch {
    // fall through
  }
  return thrownText(err);
}

function firstLine(s: string): string {
  const line = s.split("\n", 1)[0]!.trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

const decoder = new TextDecoder("utf-8");

/**
 * @internal Decodes a payload; throws a SyntaxError/TypeError describing what is wrong.
 * Malformed UTF-8 is refused, not parsed with replacement characters: a lenient decode marks
 * every bad sequence with U+FFFD, so only a payload whose text contains one (rare) is checked
 * strictly. Cheaper than a fatal TextDecoder on every job.
 */
export function decodePayload(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new SyntaxError("empty payload");
  const text = decoder.decode(bytes);
  if (text.includes("\uFFFD") && !isUtf8(bytes)) throw new TypeError("The encoded data was not valid for encoding utf-8");
  return JSON.parse(text);
}
