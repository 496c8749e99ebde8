/** @internal JSON encoding of payloads; `undefined` when the value cannot be encoded. */
export function encodePayload(data: unknown): string | undefined {
  try {
    const s = JSON.stringify(data);
    return typeof s === "string" ? s : undefined;
  } catch {
    return undefined;
  }
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/** @internal Decodes a payload; throws a SyntaxError/TypeError describing what is wrong. */
export function decodePayload(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw new SyntaxError("empty payload");
  return JSON.parse(decoder.decode(bytes));
}
