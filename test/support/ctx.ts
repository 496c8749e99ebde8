import { randomBytes } from "node:crypto";
import { after, before } from "node:test";
import { connect, type ConnectionOptions, type NatsConnection } from "@nats-io/transport-node";
import { startNats, type NatsServer, type ServerAddress } from "./nats-server.ts";

/** A unique queue name per test, so tests never see each other's jobs. */
export function uniqueName(prefix = "t"): string {
  return `${prefix}_${randomBytes(5).toString("hex")}`;
}

/** Polls `check` until it returns a truthy value or the deadline passes (then throws with `what`). */
export async function waitFor<T>(check: () => T | Promise<T>, what: string, timeoutMs = 15_000, everyMs = 20): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export function connectTo(addr: ServerAddress, extra: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ servers: addr.servers, user: addr.user, pass: addr.pass, noAsyncTraces: true, ...extra });
}

/**
 * One NATS server for a whole test file (NATS_URL, testcontainers or a local binary), and
 * connections that are closed after the file. Tests that kill or restart servers start their own.
 */
export function useNats(): { server: () => NatsServer; connect: (extra?: Partial<ConnectionOptions>) => Promise<NatsConnection> } {
  let server: NatsServer | undefined;
  const conns: NatsConnection[] = [];
  before(async () => {
    server = await startNats();
  });
  after(async () => {
    await Promise.allSettled(conns.map((c) => c.close()));
    await server?.stop();
  });
  return {
    server: () => server!,
    connect: async (extra = {}) => {
      const nc = await connectTo(server!, extra);
      conns.push(nc);
      return nc;
    },
  };
}
