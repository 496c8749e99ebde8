import { isUtf8 } from "node:buffer";

/** @internal JSON encoding of payloads; `undefined` when the value cannot be encoded. */
export function encodePayload(data: unknown): string | undefined {
  try {
    const s = JSON.stringify(data);
    return typeof s === "string" ? s : undefined;
  } catch {
    return undefined;
  }
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
