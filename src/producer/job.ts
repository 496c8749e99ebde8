import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { ConfigError, JobTooLargeError, ValidationError } from "../errors.ts";
import type { Queue } from "../queue/define.ts";
import { describe } from "../queue/define.ts";
import { encodeJson } from "../queue/codec.ts";
import { HDR } from "../queue/headers.ts";

/** What a job may hold beyond the server's max_payload: room for headers and the protocol line. */
const PAYLOAD_HEADROOM = 1024;

const ID_RE = /^[\x21-\x7e]{1,256}$/;
// A header name is printable ASCII except ":" (what NATS and HTTP accept).
const HEADER_NAME_RE = /^[\x21-\x39\x3b-\x7e]+$/;
// A header value is one line: no control characters but tab (NUL, CR and LF included).
// eslint-disable-next-line no-control-regex
const HEADER_VALUE_BAD_RE = /[\x00-\x08\x0a-\x1f\x7f]/;
const RESERVED_RE = /^(jetq|nats)-/i;

/** @internal " (item 3)" for a batch item in an error message; built only when there is an error. */
export function itemLabel(index: number | undefined): string {
  return index === undefined ? "" : ` (item ${index})`;
}

/** @internal Checks a caller's job id (sent as `Nats-Msg-Id`). */
export function checkId(id: unknown, index?: number): string {
  if (typeof id !== "string" || !ID_RE.test(id)) {
    throw new ConfigError(`Expected \`id\`${itemLabel(index)} to be 1-256 printable ASCII characters without spaces, got ${describe(id)}`);
  }
  return id;
}

/**
 * @internal Validates `data` against the queue's schema (when `validate`) and encodes it.
 * @throws {@link ValidationError} fails the schema, or is not JSON-encodable (the reason in the message, the thrown error as `cause`).
 * @throws {@link JobTooLargeError} above the server's `max_payload`, or not below the queue's `maxBytes`.
 */
export function encodeJob(queue: Queue<unknown, unknown>, data: unknown, validate: boolean, maxPayload: number | undefined, index?: number): string {
  const schema = queue.schema;
  if (validate && schema) {
    const r = schema.safeParse(data);
    if (!r.success) {
      const issues = r.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code }));
      const summary = issues
        .slice(0, 3)
        .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
        .join("; ");
      throw new ValidationError(`Job for queue "${queue.name}"${itemLabel(index)} does not match its schema: ${summary}`, issues, {
        cause: r.error,
      });
    }
  }
  const payload = encodeJson(data);
  if (typeof payload !== "string") {
    throw new ValidationError(
      `Job for queue "${queue.name}"${itemLabel(index)} is not JSON-encodable: ${payload.reason}`,
      [{ path: [], message: `not JSON-encodable: ${payload.reason}`, code: "custom" }],
      payload.cause === undefined ? undefined : { cause: payload.cause },
    );
  }
  // A UTF-16 length times 3 bounds the UTF-8 size: count bytes only when it might matter.
  const suspect = payload.length * 3;
  if (maxPayload !== undefined && suspect > maxPayload - PAYLOAD_HEADROOM) {
    const size = Buffer.byteLength(payload);
    const limit = maxPayload - PAYLOAD_HEADROOM;
    if (size > limit) {
      throw new JobTooLargeError(
        `Job for queue "${queue.name}"${itemLabel(index)} is too large: ${size} bytes, the server accepts about ${limit} (its max_payload is ${maxPayload}). Keep large data elsewhere and send a reference, or raise max_payload.`,
        size,
        limit,
        "max_payload",
      );
    }
  }
  // The server refuses a message not below the stream's max_bytes (data plus headers) with the
  // same "maximum bytes exceeded" as a full stream: tell the two apart here, where the size is known.
  const maxBytes = queue.maxBytes;
  if (maxBytes > 0 && suspect >= maxBytes) {
    const size = Buffer.byteLength(payload);
    if (size >= maxBytes) {
      throw new JobTooLargeError(
        `Job for queue "${queue.name}"${itemLabel(index)} is too large: ${size} bytes, and the queue's maxBytes is ${maxBytes}, so it can never be stored. Keep large data elsewhere and send a reference, or raise maxBytes.`,
        size,
        maxBytes,
        "maxBytes",
      );
    }
  }
  return payload;
}

/**
 * @internal The headers a job carries: `Nats-Msg-Id` when the caller gave an id, and the caller's
 * own. `undefined` when there are none: such a job's id is `seq-<stream sequence>`, and a message
 * without headers is about 45 bytes smaller and cheaper for client and server.
 * @throws {@link ConfigError} a reserved name (Jetq-…, Nats-…), or `extra` not an object.
 * @throws {@link ValidationError} an empty or invalid name, or a value with a control character.
 */
export function jobHeaders(id: string | undefined, extra: Readonly<Record<string, string>> | undefined): MsgHdrs | undefined {
  if (id === undefined && extra === undefined) return undefined;
  const h = natsHeaders();
  if (id !== undefined) h.set(HDR.msgId, id);
  if (extra !== undefined) {
    if (typeof extra !== "object" || extra === null) {
      throw new ConfigError(`Expected \`headers\` to be an object of header names and values, got ${describe(extra)}`);
    }
    for (const [k, v] of Object.entries(extra)) {
      const value = checkHeader(k, v);
      h.set(k, value);
    }
  }
  return h;
}

/** @internal Checks one caller header; returns its value as a string. */
export function checkHeader(name: string, value: unknown): string {
  if (!HEADER_NAME_RE.test(name)) {
    const why = name === "" ? "is empty" : "has a character a header name cannot hold";
    throw new ValidationError(
      `Header name ${JSON.stringify(name)} ${why}: use printable ASCII without spaces, control characters or ":"`,
      [{ path: ["headers", name], message: `invalid header name: ${why}`, code: "invalid_key" }],
    );
  }
  if (RESERVED_RE.test(name)) throw new ConfigError(`Header "${name}" is reserved: names starting with Jetq- or Nats- are set by jetq and NATS`);
  let text: string;
  try {
    text = typeof value === "string" ? value : String(value);
  } catch (err) {
    throw new ValidationError(`Header "${name}" has a value that is not a string`, [{ path: ["headers", name], message: "not a string", code: "invalid_type" }], {
      cause: err,
    });
  }
  if (HEADER_VALUE_BAD_RE.test(text)) {
    throw new ValidationError(
      `Header "${name}" has a control character in its value (NUL, CR, LF and the like): a header value is one line of text`,
      [{ path: ["headers", name], message: "control character in header value", code: "invalid_string" }],
    );
  }
  return text;
}
