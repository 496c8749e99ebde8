import {
  ClosedConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError as NatsTimeoutError,
} from "@nats-io/transport-node";
import { JetStreamApiError } from "@nats-io/jetstream";
import {
  ConnectionError,
  JetqError,
  PermissionError,
  QueueFullError,
  QueueNotFoundError,
  TimeoutError,
} from "./errors.ts";

/** JetStream API error codes jetq reacts to. */
export const API = {
  consumerNotFound: 10014,
  streamNotFound: 10059,
  noMessageFound: 10037,
  jetStreamNotEnabled: 10039,
  streamStoreFailed: 10077,
  maximumMessagesExceeded: 10047,
} as const;

export function apiCode(err: unknown): number | undefined {
  return err instanceof JetStreamApiError ? err.code : undefined;
}

/**
 * Who should have answered a request that got a 503 "no responders" (nobody subscribes to its
 * subject): a queue's stream (a publish), a queue's consumer (an ack with a reply), or JetStream
 * itself (an API request, a pull).
 */
export type Responder = "stream" | "consumer" | "api";

/**
 * The one mapping of a 503 "no responders", for the producer, the ack confirmer, the puller and
 * every API request. What it means depends on who should have listened: no stream on a queue's
 * subject, or no consumer on its ack subject, means the queue (or part of it) does not exist:
 * {@link QueueNotFoundError}. No JetStream on the API subject means no JetStream server answers
 * (disabled, another domain, or no permission to reach it): {@link ConnectionError}.
 */
export function noResponders(who: Responder, what: string, cause?: unknown): Error {
  const opts = cause === undefined ? undefined : { cause };
  switch (who) {
    case "stream":
      return new QueueNotFoundError(
        `${what}: no stream listens on the queue's subject. Call provisionQueue() (or \`jetq provision\`) first; if the queue lives in a JetStream domain, check its \`domain\`.`,
        opts,
      );
    case "consumer":
      return new QueueNotFoundError(
        `${what}: nobody answers the job's ack subject: the queue's consumer is gone (deleted?). Provision the queue again (provisionQueue() or \`jetq provision\`); the job is delivered again.`,
        opts,
      );
    case "api":
      return new ConnectionError(
        `${what}: no JetStream server answered (503). Is JetStream enabled (nats-server -js), is the queue's \`domain\` right, and may this user publish to the JetStream API ($JS.API.> or $JS.<domain>.API.>)?`,
        opts,
      );
  }
}

/**
 * Turns an error from the NATS client into the jetq error a user can act on.
 * `what` names the operation ("publish to emails"), so the message says what failed.
 */
export function mapNatsError(err: unknown, what: string): Error {
  if (err instanceof JetqError) return err;
  if (err instanceof PermissionViolationError) {
    return new PermissionError(
      `${what}: permission denied to ${err.operation} on "${err.subject}". Grant this NATS user that permission.`,
      { cause: err },
    );
  }
  if (err instanceof RequestError && err.cause instanceof PermissionViolationError) {
    return mapNatsError(err.cause, what);
  }
  if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
    // The client's own requests (nats.js's JetStream API) go to API subjects.
    return noResponders("api", what, err);
  }
  if (err instanceof NatsTimeoutError) {
    return new TimeoutError(`${what}: the server did not answer in time.`, { cause: err });
  }
  // Requests still waiting when the connection closes are rejected by the client with a bare
  // RequestError("connection closed") (nats-core muxsubscription), not ClosedConnectionError.
  if (
    err instanceof ClosedConnectionError ||
    err instanceof DrainingConnectionError ||
    (err instanceof RequestError && /connection closed/i.test(err.message))
  ) {
    return new ConnectionError(`${what}: the NATS connection is closed or draining.`, { cause: err });
  }
  if (err instanceof Error && err.constructor.name === "JetStreamNotEnabled") {
    return new ConnectionError(`${what}: JetStream is not enabled on this server or account, or not in the queue's \`domain\` (is it right?).`, { cause: err });
  }
  if (err instanceof JetStreamApiError) {
    const code = err.code;
    if (code === API.streamNotFound || code === API.consumerNotFound) {
      return new QueueNotFoundError(`${what}: ${err.message}. Call provisionQueue() (or \`jetq provision\`) first.`, {
        cause: err,
      });
    }
    if (code === API.streamStoreFailed || code === API.maximumMessagesExceeded || /maximum (messages|bytes)/i.test(err.message)) {
      return new QueueFullError(`${what}: the queue is full (${err.message}).`, "stream_full", { cause: err });
    }
    if (code === API.jetStreamNotEnabled) {
      return new ConnectionError(`${what}: JetStream is not enabled for this account.`, { cause: err });
    }
    return new JetqError(`${what}: ${err.message} (JetStream error ${code}).`, { cause: err });
  }
  if (err instanceof Error && /permissions violation/i.test(err.message)) {
    return new PermissionError(`${what}: ${err.message}. Grant this NATS user that permission.`, { cause: err });
  }
  if (err instanceof Error) return new JetqError(`${what}: ${err.message}`, { cause: err });
  return new JetqError(`${what}: ${thrownText(err)}`, { cause: err });
}

/**
 * @internal Text of any thrown value. `String()` itself throws for some (an object without a
 * prototype, or whose toString throws); an error path must not.
 */
export function thrownText(err: unknown): string {
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err);
  }
}
