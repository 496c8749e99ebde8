import { type NatsConnection, PermissionViolationError, type Status } from "@nats-io/transport-node";

/**
 * @internal One user of a connection's shared status watcher and sweep timer: a producer's
 * PubAck table, a worker's ack confirmer, a puller.
 */
export interface TransportUser {
  /** Called by the connection's one timer: expire what is due. */
  sweep(now: number): void;
  /** The client reconnected: requests sent from now on must use a fresh inbox. */
  reconnected(): void;
  /** The connection closed: settle everything pending now. */
  closed(): void;
  /** The server refused something on this connection; the user checks whether it was its own. */
  denied(err: PermissionViolationError): void;
}

const hubs = new WeakMap<NatsConnection, ConnectionHub>();

/**
 * @internal What every request/reply user of one connection shares: one watcher of the
 * connection's status stream (reconnects, permission errors, the close) and one timer that
 * sweeps every user's expired requests.
 *
 * Before this, the producer, the ack confirmer and the puller each watched the status stream
 * and ran a timer of their own, and they drifted: only the puller moved to a fresh inbox after a
 * reconnect, and nothing settled a producer's pending publishes when the connection closed (an
 * unref'd timer let a script exit 0 with publishes unsettled).
 *
 * One hub per connection, kept for the connection's life (a WeakMap entry, so it goes with the
 * connection): its close listener and status iterator are registered once, however many users
 * come and go.
 */
export class ConnectionHub {
  /** The hub of `nc`, made on first use. */
  static of(nc: NatsConnection): ConnectionHub {
    let hub = hubs.get(nc);
    if (hub === undefined) {
      hub = new ConnectionHub(nc);
      hubs.set(nc, hub);
    }
    return hub;
  }

  readonly #nc: NatsConnection;
  /** Users and how often each wants its sweep, in ms. */
  readonly #users = new Map<TransportUser, number>();
  #timer: NodeJS.Timeout | undefined;
  #period = Infinity;
  #watching = false;
  #closed = false;

  private constructor(nc: NatsConnection) {
    this.#nc = nc;
  }

  /** Whether the connection was seen to close. */
  get isClosed(): boolean {
    return this.#closed || this.#nc.isClosed();
  }

  /** Users joined now (tests). */
  get users(): number {
    return this.#users.size;
  }

  /** The sweep period in use, in ms (Infinity without users). */
  get period(): number {
    return this.#period;
  }

  /**
   * Adds `user`, swept at least every `sweepEveryMs`. The timer runs at the shortest period any
   * user asked for and is unref'd: pending requests never hold a process open by themselves,
   * which is safe because a closed connection now settles them at once.
   */
  join(user: TransportUser, sweepEveryMs: number): void {
    this.#users.set(user, sweepEveryMs);
    this.#retime();
    this.#watch();
  }

  /** Removes `user`; the timer stops with the last one. */
  leave(user: TransportUser): void {
    if (!this.#users.delete(user)) return;
    this.#retime();
  }

  #retime(): void {
    let p = Infinity;
    for (const every of this.#users.values()) if (every < p) p = every;
    if (p === this.#period) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#period = p;
    if (p === Infinity) return;
    this.#timer = setInterval(() => this.#tick(), p);
    this.#timer.unref();
  }

  #tick(): void {
    const now = Date.now();
    for (const u of this.#users.keys()) u.sweep(now);
  }

  #watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    if (this.#nc.isClosed()) {
      this.#onClosed();
      return;
    }
    const status = this.#nc.status() as AsyncIterable<Status>;
    void (async () => {
      try {
        for await (const s of status) {
          if (s.type === "reconnect") {
            for (const u of [...this.#users.keys()]) guarded(() => u.reconnected());
          } else if (s.type === "error" && s.error instanceof PermissionViolationError) {
            const e = s.error;
            for (const u of [...this.#users.keys()]) guarded(() => u.denied(e));
          } else if (s.type === "close") {
            // Sent before the client finishes closing: the earliest word that it is over.
            this.#onClosed();
          }
        }
      } catch {
        // the status stream ends with the connection
      }
    })();
    void this.#nc.closed().then(
      () => this.#onClosed(),
      () => this.#onClosed(),
    );
  }

  #onClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const u of [...this.#users.keys()]) guarded(() => u.closed());
  }
}

/**
 * Runs a user's reaction to a connection event. A throw (a user's event listener, say) must not
 * end the status loop for every other user: it is rethrown on its own turn, as a throwing
 * listener would be anywhere else.
 */
function guarded(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    process.nextTick(() => {
      throw err;
    });
  }
}
