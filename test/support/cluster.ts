/**
 * A 3-node JetStream cluster on loopback, for failover tests: local `nats-server` processes, or
 * (`containers: true`, the default under `JETQ_NATS_SERVER=container`) three containers with
 * host networking, started through testcontainers.
 *
 * Each node runs the repository's own config, `infra/nats/cluster/node<i>.conf` (mounted into
 * the container); the ports and the store directory in those files are overridden with
 * command-line flags (free loopback ports; a temporary store per process, the container's own
 * filesystem per container), so the configs CI validates are the ones the tests run.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { findNatsServerBinary, freePort, LocalNatsServer, reportServerPath } from "./nats-server.ts";

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Where the configs the cluster runs live. */
export const CLUSTER_CONFIG_DIR = join(repoRoot, "infra", "nats", "cluster");
/** The single-node config the crash tests run. */
export const SINGLE_CONFIG = join(repoRoot, "infra", "nats", "single.conf");

/** What a failover test does to one node, process or container alike. */
export interface ClusterMember {
  /** `nats://127.0.0.1:<client port>`. */
  readonly servers: string;
  /** A crash: SIGKILL (`docker kill` for a container). */
  kill(): Promise<void>;
  /** Starts it again after a kill, same ports and store; resolves when it answers. */
  start(): Promise<void>;
  /** Stops it for good and removes its store. */
  stop(): Promise<void>;
}

/** One node of a {@link LocalNatsCluster}. */
export interface ClusterNode {
  /** `server_name` from its config: n1, n2, n3. */
  name: string;
  server: ClusterMember;
  routePort: number;
  httpPort: number;
}

/** What the JetStream API says about a replicated stream's placement. */
export interface StreamPlacement {
  leader: string | undefined;
  replicas: Array<{ name: string; current: boolean; offline?: boolean }>;
}

export class LocalNatsCluster {
  readonly nodes: readonly ClusterNode[];
  readonly #root: string;

  private constructor(nodes: ClusterNode[], root: string) {
    this.nodes = nodes;
    this.#root = root;
  }

  /** All client URLs, comma-separated (what `connect({ servers })` takes). */
  get servers(): string {
    return this.nodes.map((n) => n.server.servers).join(",");
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no cluster node named ${name} (have ${this.nodes.map((x) => x.name).join(", ")})`);
    return n;
  }

  /**
   * Starts three nodes from infra/nats/cluster/node{1,2,3}.conf on free loopback ports and waits
   * (deadline `readyMs`) until the cluster has a JetStream meta leader. `containers` runs them in
   * containers (default: when `JETQ_NATS_SERVER=container`); that needs host networking
   * (`JETQ_DOCKER_NETWORK=host`, as scripts/docker.sh's engine has), since the nodes route to
   * each other on loopback.
   */
  static async start(opts: { readyMs?: number; containers?: boolean } = {}): Promise<LocalNatsCluster> {
    const containers = opts.containers ?? process.env.JETQ_NATS_SERVER === "container";
    if (containers && process.env.JETQ_DOCKER_NETWORK !== "host") {
      throw new Error("A cluster of NATS containers needs host networking (the nodes route to each other on loopback): " +
        "run through scripts/docker.sh's private engine, or set JETQ_DOCKER_NETWORK=host on an engine that has it (Linux).");
    }
    const bin = findNatsServerBinary();
    if (!containers && !bin) throw new Error("nats-server binary not found (install it or set NATS_SERVER_BIN)");
    const root = mkdtempSync(join(tmpdir(), "jetq-cluster-"));
    const ports: Array<{ client: number; route: number; http: number }> = [];
    const taken = new Set<number>();
    const pick = async (): Promise<number> => {
      for (let i = 0; i < 20; i++) {
        const p = await freePort();
        if (!taken.has(p)) {
          taken.add(p);
          return p;
        }
      }
      throw new Error("could not find free ports");
    };
    for (let i = 0; i < 3; i++) ports.push({ client: await pick(), route: await pick(), http: await pick() });
    const routes = ports.map((p) => `nats://127.0.0.1:${p.route}`).join(",");
    const flags = (i: number, config: string): string[] => [
      "-c", config,
      "-m", String(ports[i]!.http),
      "--cluster", `nats://127.0.0.1:${ports[i]!.route}`,
      "--routes", routes,
    ];
    let nodes: ClusterNode[];
    if (containers) {
      const { ContainerNatsServer } = await import("./nats-container.ts");
      const started = await Promise.allSettled(ports.map((p, i) =>
        ContainerNatsServer.start({
          hostNetwork: true,
          port: p.client,
          args: flags(i, "/etc/nats/nats.conf"),
          mounts: [{ source: join(CLUSTER_CONFIG_DIR, `node${i + 1}.conf`), target: "/etc/nats/nats.conf" }],
        })));
      const failed = started.find((r) => r.status === "rejected");
      if (failed) {
        await Promise.allSettled(started.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
        rmSync(root, { recursive: true, force: true });
        throw failed.reason;
      }
      nodes = started.map((r, i) => {
        const server = (r as PromiseFulfilledResult<ClusterMember & { describe(): string }>).value;
        reportServerPath("container", "cluster", `node n${i + 1}, ${server.describe()}`);
        return { name: `n${i + 1}`, server, routePort: ports[i]!.route, httpPort: ports[i]!.http };
      });
    } else {
      nodes = ports.map((p, i) => ({
        name: `n${i + 1}`,
        server: new LocalNatsServer(bin!, p.client, join(root, `n${i + 1}`), flags(i, join(CLUSTER_CONFIG_DIR, `node${i + 1}.conf`))),
        routePort: p.route,
        httpPort: p.http,
      }));
    }
    const cluster = new LocalNatsCluster(nodes, root);
    try {
      if (!containers) {
        await Promise.all(nodes.map((n) => n.server.start()));
        for (const n of nodes) reportServerPath("binary", "cluster", `node ${n.name}, ${bin} on ${n.server.servers}`);
      }
      await cluster.waitForMetaLeader(opts.readyMs ?? 30_000);
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  /**
   * Waits until the JetStream API answers (a meta leader is elected) and the meta leader sees
   * both other nodes as current peers. Without the second step, a replicas-3 stream created at
   * once can fail with "no suitable peers for placement" (seen with containers, whose nodes
   * start less evenly than processes).
   */
  async waitForMetaLeader(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    const nc = await connect({ servers: this.servers, noAsyncTraces: true, maxReconnectAttempts: -1 });
    try {
      while (Date.now() < deadline) {
        try {
          const r = await nc.request("$JS.API.INFO", "", { timeout: 1_000 });
          const info = r.json<{ error?: { description: string } }>();
          if (info.error) last = info.error.description;
          else if (await this.#metaPeersCurrent()) return;
          else last = "the meta leader does not see both other nodes as current peers yet";
        } catch (err) {
          last = err;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      await nc.close();
    }
    throw new Error(`cluster had no JetStream meta leader with all peers current within ${timeoutMs} ms (last: ${String(last)})`);
  }

  /** The meta leader's /jsz lists the two other nodes, current and online. */
  async #metaPeersCurrent(): Promise<boolean> {
    type Meta = { leader?: string; replicas?: Array<{ name: string; current: boolean; offline?: boolean }> };
    for (const n of this.nodes) {
      const jsz = await fetch(`http://127.0.0.1:${n.httpPort}/jsz`, { signal: AbortSignal.timeout(1_000) })
        .then((r) => r.json() as Promise<{ meta_cluster?: Meta }>)
        .catch(() => undefined);
      const meta = jsz?.meta_cluster;
      if (meta?.leader !== n.name) continue;
      const peers = meta.replicas ?? [];
      return peers.length === this.nodes.length - 1 && peers.every((p) => p.current && !p.offline);
    }
    return false;
  }

  /** Reads a stream's leader and replicas through `$JS.API.STREAM.INFO` (answered by the leader). */
  async placement(nc: NatsConnection, stream: string): Promise<StreamPlacement> {
    const r = await nc.request(`$JS.API.STREAM.INFO.${stream}`, "", { timeout: 2_000 });
    const info = r.json<{ error?: { description: string }; cluster?: { leader?: string; replicas?: StreamPlacement["replicas"] } }>();
    if (info.error) throw new Error(`stream info ${stream}: ${info.error.description}`);
    return { leader: info.cluster?.leader, replicas: info.cluster?.replicas ?? [] };
  }

  /** Polls until the stream has a leader (optionally: other than `not`), deadline `timeoutMs`. */
  async waitForLeader(nc: NatsConnection, stream: string, opts: { not?: string; timeoutMs?: number } = {}): Promise<ClusterNode> {
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        const p = await this.placement(nc, stream);
        if (p.leader && p.leader !== opts.not) return this.node(p.leader);
        last = `leader ${String(p.leader)}`;
      } catch (err) {
        last = err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`stream ${stream} had no leader${opts.not ? ` other than ${opts.not}` : ""} in time (last: ${String(last)})`);
  }

  /** kill -9 one node (a crash). */
  async kill(name: string): Promise<void> {
    await this.node(name).server.kill();
  }

  /** Starts a killed or stopped node again, same ports and store. */
  async restart(name: string): Promise<void> {
    await this.node(name).server.start();
  }

  /** Stops every node and removes their stores. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.server.stop()));
    rmSync(this.#root, { recursive: true, force: true });
  }
}
