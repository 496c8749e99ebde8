import {
  AuthorizationError,
  connect as natsConnect,
  ConnectionError as NatsConnectionError,
  type NatsConnection,
  type NodeConnectionOptions,
} from "@nats-io/transport-node";
import { AuthenticationError, ConnectionError, JetqError } from "./errors.ts";
import { thrownText } from "./natserr.ts";

/** Options of {@link connect}: the NATS client's own connection options. */
export type ConnectOptions = NodeConnectionOptions;

function describeServers(s: ConnectOptions["servers"]): string {
  const list = Array.isArray(s) ? s : [s ?? "127.0.0.1:4222"];
  // Credentials in a URL (nats://user:pass@host) must never reach an error message.
  return list.map((u) => String(u).replace(/\/\/[^@/]*@/, "//")).join(", ");
}

/**
 * Connects to NATS with the settings jetq recommends (`noAsyncTraces: true`,
 * unless you set it) and turns connection failures into typed jetq errors:
 * {@link ConnectionError} when no server answers, {@link AuthenticationError}
 * when the credentials are refused. Using the NATS client's `connect` directly
 * works just as well.
 */
export async function connect(options: ConnectOptions = {}): Promise<NatsConnection> {
  const where = describeServers(options.servers);
  try {
    return await natsConnect({ noAsyncTraces: true, ...options });
  } catch (err) {
    if (err instanceof AuthorizationError || /authorization|authentication/i.test(String((err as Error)?.message))) {
      throw new AuthenticationError(
        `NATS at ${where} refused the credentials. Check the user/password, token, creds file or client certificate.`,
        { cause: err },
      );
    }
    if (err instanceof NatsConnectionError || (err as NodeJS.ErrnoException)?.code === "ECONNREFUSED") {
      throw new ConnectionError(
        `Cannot reach NATS at ${where}: ${(err as Error).message}. Is nats-server running (with -js) and is the address right (NATS_URL)?`,
        { cause: err },
      );
    }
    throw new JetqError(`Connecting to NATS at ${where} failed: ${(err as Error)?.message ?? thrownText(err)}`, { cause: err });
  }
}
