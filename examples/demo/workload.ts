/**
 * The demo's queue and its simulated workload: image thumbnails. Shared by the producer, the
 * workers and the orchestrator so that they agree on the queue definition and on which jobs
 * are meant to fail (decided by a hash of the image id, so every run behaves the same way).
 */
import { z } from "zod";
import { defineQueue } from "jetq";

export const thumbnailJob = z.object({
  imageId: z.string().min(1),
  url: z.string().startsWith("s3://"),
  width: z.number().int().min(16).max(4096),
  height: z.number().int().min(16).max(4096),
  format: z.enum(["webp", "avif", "jpeg"]),
});
export type ThumbnailJob = z.infer<typeof thumbnailJob>;

/** Settings the demo shows off: a short ackWait so a killed worker's jobs come back quickly. */
export const DEMO_ACK_WAIT_MS = 3000;
export const DEMO_MAX_ATTEMPTS = 4;

/** The demo's queue; `replicas` 3 in a cluster (docker-compose, Kubernetes). */
export function demoQueue(name: string, replicas = 1) {
  return defineQueue({
    name,
    replicas,
    schema: thumbnailJob,
    maxAttempts: DEMO_MAX_ATTEMPTS,
    ackWaitMs: DEMO_ACK_WAIT_MS,
    backoff: { initialMs: 250, maxMs: 2000, multiplier: 2, jitter: 0.2 },
    maxAckPending: 1000,
  });
}

/** What will happen to a job. */
export type Fate =
  | { kind: "ok" }
  /** Times out fetching the original `failures` times, then succeeds: retried with backoff. */
  | { kind: "flaky"; failures: number }
  /** The image is corrupt: a PermanentError, dead-lettered at once. */
  | { kind: "corrupt" }
  /** The origin answers 500 every time: dead-lettered after maxAttempts. */
  | { kind: "origin-down" }
  /** Published with a payload that fails the schema: dead-lettered by the worker without running. */
  | { kind: "invalid" };

/** FNV-1a: a cheap, stable hash so the same image id always has the same fate. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // FNV alone barely mixes ids that differ in one digit; a murmur3 finalizer spreads them out.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 0x100000000;
}

export function fateOf(imageId: string): Fate {
  const r = hash(imageId);
  if (r < 0.006) return { kind: "corrupt" };
  if (r < 0.011) return { kind: "origin-down" };
  if (r < 0.015) return { kind: "invalid" };
  if (r < 0.07) return { kind: "flaky", failures: 2 };
  if (r < 0.13) return { kind: "flaky", failures: 1 };
  return { kind: "ok" };
}

export function imageId(i: number): string {
  return `img-${String(i).padStart(6, "0")}`;
}

const FORMATS = ["webp", "avif", "jpeg"] as const;

/** Job `i` of the run. The invalid ones carry a zero width, which the schema rejects. */
export function jobFor(i: number): ThumbnailJob {
  const id = imageId(i);
  const r = hash(`${id}/size`);
  return {
    imageId: id,
    url: `s3://uploads/originals/${id}.jpg`,
    width: fateOf(id).kind === "invalid" ? 0 : 160 + Math.floor(r * 6) * 80,
    height: 120 + Math.floor(r * 5) * 60,
    format: FORMATS[i % 3]!,
  };
}

/** Simulated processing time: 20-200 ms, longer for bigger thumbnails and avif. */
export function workMs(job: ThumbnailJob): number {
  const base = 20 + hash(`${job.imageId}/time`) * 130;
  const size = (job.width * job.height) / (640 * 360);
  return Math.round(base * (0.6 + size * 0.5) * (job.format === "avif" ? 1.3 : 1));
}
