/**
 * A NATS server in a container, started through testcontainers: the container path of
 * {@link startNats} and the server of the container-only tests (test/containers).
 *
 * Two layouts, both reached at `nats://127.0.0.1:<port>` with a port fixed for the container's
 * life (so a client reconnects to the same address after a stop/start or a pause):
 * - host networking (`JETQ_DOCKER_NETWORK=host`, scripts/docker.sh's private engine has no
 *   bridge): the server listens on 127.0.0.1 on a free port of the host's own, so the container
 *   gets no address of its own and every byte stays on loopback;
 * - a mapped port (a normal Docker engine): the server listens on 4222 inside the container,
 *   published on a free host port.
 * The JetStream store is inside the container (`-sd /data/jetstream`): it survives `docker stop`
 * and `docker start`, and goes with the container.
 */
import { connect as tcpConnect } from "node:net";
import type { Container } from "dockerode";
import type { StartedTestContainer } from "testcontainers";
import { freePort, type NatsServer } from "./nats-server.ts";

/** The image a developer's Docker engine runs when `JETQ_NATS_IMAGE` is unset. */
export const OFFICIAL_NATS_IMAGE = "nats:2.10-alpine";

export interface NatsContainerOptions {
  /** @default process.env.JETQ_NATS_IMAGE ?? OFFICIAL_NATS_IMAGE */
  image?: string;
  /** @default process.env.JETQ_DOCKER_NETWORK === "host" */
  hostNetwork?: boolean;
  /** More nats-server flags, after the address, port, `-js` and store flags. */
  args?: string[];
  /** Deadline for the server to answer after a start. @default 60_000 */
  readyMs?: number;
  /** The host port clients use, chosen by the caller (no retry on another port). @default a free port */
  port?: number;
  /** Host files or directories mounted read-only into the container (a config file, say). */
  mounts?: Array<{ source: string; target: string }>;
}

/** Resolves once `nats://127.0.0.1:port` answers with the server's INFO line, within `ms`. */
export async function waitForNatsInfo(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "no answer";
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, "127.0.0.1");
      const t = setTimeout(() => {
        s.destroy();
        resolve(false);
      }, 1_000);
      s.once("data", (b: Buffer) => {
        clearTimeout(t);
        s.destroy();
        last = b.toString().slice(0, 40);
        resolve(b.toString().startsWith("INFO "));
      });
      s.once("error", (e) => {
        clearTimeout(t);
        last = e.message;
        resolve(false);
      });
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no NATS server answered on 127.0.0.1:${port} within ${ms} ms (last: ${last})`);
}

export class ContainerNatsServer implements NatsServer {
  readonly kind = "container" as const;
  readonly image: string;
  readonly hostNetwork: boolean;
  /** The host port clients use (127.0.0.1). */
  readonly port: number;
  readonly #started: StartedTestContainer;
  readonly #container: Container;
  readonly #readyMs: number;

  private constructor(image: string, hostNetwork: boolean, port: number, started: StartedTestContainer, container: Container, readyMs: number) {
    this.image = image;
    this.hostNetwork = hostNetwork;
    this.port = port;
    this.#started = started;
    this.#container = container;
    this.#readyMs = readyMs;
  }

  get servers(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** The container's id, for `docker` commands. */
  get id(): string {
    return this.#started.getId();
  }

  /** What a log line says about this server. */
  describe(): string {
    return `testcontainers, image ${this.image}, ${this.hostNetwork ? "host network" : "mapped port"}, ${this.servers}`;
  }

  /**
   * Starts a container and resolves when it answers (log "Server is ready", then the INFO line).
   * Retries on another port when the chosen one was taken in between (host networking).
   */
  static async start(opts: NatsContainerOptions = {}): Promise<ContainerNatsServer> {
    const { GenericContainer, Wait, getContainerRuntimeClient } = await import("testcontainers");
    const image = opts.image ?? (process.env.JETQ_NATS_IMAGE || OFFICIAL_NATS_IMAGE);
    const hostNetwork = opts.hostNetwork ?? process.env.JETQ_DOCKER_NETWORK === "host";
    const readyMs = opts.readyMs ?? 60_000;
    let lastErr: unknown;
    for (let i = 0; i < (opts.port === undefined ? 3 : 1); i++) {
      const port = opts.port ?? (await freePort());
      const listen = hostNetwork ? ["-a", "127.0.0.1", "-p", String(port)] : ["-a", "0.0.0.0", "-p", "4222"];
      let c = new GenericContainer(image)
        .withCommand([...listen, "-js", "-sd", "/data/jetstream", ...(opts.args ?? [])])
        .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
        .withStartupTimeout(readyMs)
        .withLabels({ "org.jetq.test": "nats" })
        .withBindMounts((opts.mounts ?? []).map((m) => ({ ...m, mode: "ro" as const })));
      c = hostNetwork ? c.withNetworkMode("host") : c.withExposedPorts({ container: 4222, host: port });
      try {
        const started = await c.start();
        const client = await getContainerRuntimeClient();
        const srv = new ContainerNatsServer(image, hostNetwork, port, started, client.container.getById(started.getId()), readyMs);
        await waitForNatsInfo(port, readyMs);
        return srv;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** `docker pause`: the cgroup freezer stops every process; connections stay open, unanswered. */
  async pause(): Promise<void> {
    await this.#container.pause();
  }

  /** `docker unpause`. */
  async unpause(): Promise<void> {
    await this.#container.unpause();
  }

  /** `docker stop`: SIGTERM (the server shuts down cleanly), SIGKILL after `graceSec`. */
  async stopContainer(graceSec = 10): Promise<void> {
    await this.#container.stop({ t: graceSec });
  }

  /** `docker kill`: SIGKILL, a crash. */
  async kill(): Promise<void> {
    await this.#container.kill({ signal: "SIGKILL" });
  }

  /** `docker start` after a stop or kill: same port, same store; resolves when it answers. */
  async startContainer(): Promise<void> {
    await this.#container.start();
    await waitForNatsInfo(this.port, this.#readyMs);
  }

  /** {@link startContainer}, under the name a cluster node's restart uses (test/support/cluster.ts). */
  start(): Promise<void> {
    return this.startContainer();
  }

  /** Whether the container is running, paused, exited... (`docker inspect`'s State.Status). */
  async status(): Promise<string> {
    return (await this.#container.inspect()).State.Status;
  }

  /** Removes the container (and its store), whatever state it is in. */
  async stop(): Promise<void> {
    try {
      if ((await this.status()) === "paused") await this.unpause();
    } catch {
      // Gone already: the removal below says so, or succeeds.
    }
    await this.#container.remove({ force: true, v: true }).catch((err: { statusCode?: number }) => {
      if (err.statusCode !== 404) throw err;
    });
  }
}
