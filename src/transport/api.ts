import { ConfigError } from "../errors.ts";

// One subject token of printable ASCII: no dot, no wildcard, no space.
const DOMAIN_RE = /^[\x21-\x29\x2b-\x2d\x2f-\x3d\x3f-\x7e]{1,255}$/;

/**
 * @internal The JetStream domain a queue lives in, or `undefined` for the connection's own
 * JetStream. Read from the queue definition (`defineQueue({ domain })`), the one place users
 * name it, so the producer, workers, dead letters, provisioning and stats always agree.
 * @throws {ConfigError} a domain that is not one subject token.
 */
export function domainOf(queue: object): string | undefined {
  const d = (queue as { domain?: unknown }).domain;
  if (d === undefined || d === null || d === "") return undefined;
  if (typeof d !== "string" || !DOMAIN_RE.test(d)) {
    throw new ConfigError(`Expected \`domain\` to be a JetStream domain name (one subject token: no dots, spaces or wildcards), got ${JSON.stringify(String(d)).slice(0, 80)}`);
  }
  return d;
}

/** @internal The JetStream API prefix of a domain: `$JS.<domain>.API`, or `$JS.API` without one (as nats.js builds it). */
export function apiPrefix(domain: string | undefined): string {
  return domain === undefined ? "$JS.API" : `$JS.${domain}.API`;
}

/**
 * @internal Options for nats.js's `jetstream(nc, …)` and `jetstreamManager(nc, …)` that follow
 * the queue's domain. A fresh object per call: nats.js deletes `domain` from the object it gets.
 */
export function jsOptions(queue: object): { domain?: string } {
  const domain = domainOf(queue);
  return domain === undefined ? {} : { domain };
}
