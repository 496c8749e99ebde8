/**
 * @internal Stream sequence and delivery count of a JetStream message, read from its ack subject:
 * `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>`, or on servers that add a
 * domain and account hash, `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]`.
 *
 * Reads the two numbers in place; `JsMsg.info` splits the subject and fills an object of eleven
 * fields per message (about 4 % of a draining worker's CPU). Returns `undefined` for anything
 * else (not a JetStream delivery).
 */
export function deliveryOf(reply: string): { seq: number; deliveries: number } | undefined {
  if (!reply.startsWith("$JS.ACK.")) return undefined;
  let dots = 0;
  for (let i = 0; i < reply.length; i++) if (reply.charCodeAt(i) === 46) dots++;
  // 9 tokens: the old form; 11 or 12: with domain and account hash (the form nats.js accepts).
  const deliveredToken = dots === 8 ? 4 : dots === 10 || dots === 11 ? 6 : -1;
  if (deliveredToken < 0) return undefined;
  let token = 0;
  let i = 0;
  while (token < deliveredToken) if (reply.charCodeAt(i++) === 46) token++;
  const deliveries = readNumber(reply, i);
  if (deliveries < 0) return undefined;
  while (reply.charCodeAt(i) !== 46) i++;
  const seq = readNumber(reply, i + 1);
  if (seq < 0) return undefined;
  return { seq, deliveries };
}

/** The decimal number from `at` to the next dot (or the end); -1 if that is not one. */
function readNumber(s: string, at: number): number {
  let n = 0;
  let i = at;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) break;
    if (c < 48 || c > 57) return -1;
    n = n * 10 + (c - 48);
  }
  return i === at || n > Number.MAX_SAFE_INTEGER ? -1 : n;
}
