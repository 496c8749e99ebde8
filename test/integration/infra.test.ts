/**
 * The deployment files under infra/: every nats-server config passes the server's own config
 * test (also with the flags docker-compose adds), and the compose, Prometheus, Kubernetes, Helm
 * and KEDA files parse and agree with each other and with jetq's naming (stream JETQ_<queue>,
 * consumer "workers", monitoring port 8222). The compose file's variant for local images and host
 * networking is checked here too; test/containers/compose.test.ts runs it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { defineQueue } from "../../src/index.ts";
import { localCompose } from "../../infra/compose/local.ts";
import { findNatsServerBinary } from "../support/nats-server.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const infra = join(root, "infra");
const composeDir = join(infra, "compose");
const bin = findNatsServerBinary();

type Obj = Record<string, unknown>;
const obj = (v: unknown, what: string): Obj => {
  assert.ok(v !== null && typeof v === "object" && !Array.isArray(v), `${what} is a mapping`);
  return v as Obj;
};
const arr = (v: unknown, what: string): unknown[] => {
  assert.ok(Array.isArray(v), `${what} is a list`);
  return v;
};
const str = (v: unknown, what: string): string => {
  assert.equal(typeof v, "string", `${what} is a string`);
  return v as string;
};

function confFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? confFiles(p) : p.endsWith(".conf") ? [p] : [];
  });
}

function natsConfigTest(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(bin!, ["-t", ...args], { encoding: "utf8", timeout: 10_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function flag(command: string[], name: string): string | undefined {
  const i = command.indexOf(name);
  return i >= 0 ? command[i + 1] : undefined;
}

/** "30s", "1m30s" → ms (compose durations). */
function composeDuration(s: string): number {
  let ms = 0;
  for (const [, n, u] of s.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[u as "ms"];
  return ms;
}

const compose = obj(parse(readFileSync(join(composeDir, "docker-compose.yml"), "utf8"), { merge: true }), "docker-compose.yml");
const services = obj(compose.services, "services");
const natsServices = Object.keys(services).filter((s) => /^nats-\d+$/.test(s)).sort();

describe("nats-server configs", { skip: bin ? false : "needs a nats-server binary" }, () => {
  it("every infra/nats/*.conf passes nats-server -t", () => {
    const files = confFiles(join(infra, "nats"));
    assert.ok(files.length >= 4, `single-node and 3 cluster configs exist (found ${files.length})`);
    for (const f of files) {
      const r = natsConfigTest(["-c", f]);
      assert.equal(r.status, 0, `${f}:\n${r.output}`);
      assert.match(r.output, /is valid/);
    }
  });

  it("the cluster configs each have their own server name and list the same routes", () => {
    const files = confFiles(join(infra, "nats", "cluster")).sort();
    assert.equal(files.length, 3);
    const names = files.map((f) => /^server_name:\s*(\S+)/m.exec(readFileSync(f, "utf8"))?.[1]);
    assert.equal(new Set(names).size, 3, `distinct server names: ${names.join(", ")}`);
    const routes = files.map((f) => /routes:\s*\[([^\]]*)\]/m.exec(readFileSync(f, "utf8"))?.[1]?.trim().split(/\s+/).sort().join(","));
    assert.equal(new Set(routes).size, 1, "every node lists the same routes");
  });

  it("each compose NATS node's command line passes nats-server -t with the repository config it mounts", () => {
    const store = mkdtempSync(join(tmpdir(), "jetq-infra-"));
    try {
      for (const name of natsServices) {
        const svc = obj(services[name], name);
        const command = arr(svc.command, `${name}.command`).map(String);
        const target = flag(command, "-c");
        assert.ok(target, `${name} passes -c`);
        const mount = arr(svc.volumes, `${name}.volumes`).map(String).find((v) => v.split(":")[1] === target);
        assert.ok(mount, `${name} mounts a file at ${target}`);
        const host = resolve(composeDir, mount.split(":")[0]!);
        assert.ok(host.startsWith(join(infra, "nats")), `${name} runs a config from infra/nats (${host})`);
        const args = command.map((a) => (a === target ? host : a));
        args[args.indexOf("-sd") + 1] = join(store, name);
        const r = natsConfigTest(args);
        assert.equal(r.status, 0, `${name}: nats-server -t ${args.join(" ")}\n${r.output}`);
      }
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });
});

describe("docker-compose", () => {
  it("runs a 3-node cluster whose nodes route to each other and mount distinct configs", () => {
    assert.deepEqual(natsServices, ["nats-1", "nats-2", "nats-3"]);
    const mounts = new Set<string>();
    for (const name of natsServices) {
      const command = arr(obj(services[name], name).command, `${name}.command`).map(String);
      const routes = str(flag(command, "--routes"), `${name} --routes`).split(",");
      const clusterPort = new URL(str(flag(command, "--cluster"), `${name} --cluster`)).port;
      assert.deepEqual(routes.map((r) => new URL(r).hostname).sort(), natsServices, `${name} routes to every node`);
      for (const r of routes) assert.equal(new URL(r).port, clusterPort);
      assert.ok(flag(command, "-sd")?.startsWith("/data"), `${name} stores on its volume`);
      const vols = arr(obj(services[name], name).volumes, `${name}.volumes`).map(String);
      mounts.add(vols.find((v) => v.includes("/nats/"))!);
      assert.ok(obj(services[name], name).healthcheck, `${name} has a healthcheck`);
    }
    assert.equal(mounts.size, 3);
  });

  it("runs the example workers against every node, with replicas 3 and a drain that fits the grace period", () => {
    const worker = obj(services.worker, "worker");
    const build = obj(worker.build, "worker.build");
    const dockerfile = join(resolve(composeDir, str(build.context, "build.context")), str(build.dockerfile, "build.dockerfile"));
    assert.ok(existsSync(dockerfile), `${dockerfile} exists`);
    const env = obj(worker.environment, "worker.environment");
    const urls = str(env.NATS_URL, "NATS_URL").split(",").map((u) => new URL(u));
    assert.deepEqual(urls.map((u) => u.hostname).sort(), natsServices);
    for (const u of urls) assert.equal(u.port, flag(arr(obj(services[u.hostname], u.hostname).command, "command").map(String), "-p"));
    const queue = defineQueue({ name: str(env.JETQ_QUEUE, "JETQ_QUEUE"), replicas: Number(env.JETQ_REPLICAS) });
    assert.equal(queue.replicas, 3);
    assert.ok(composeDuration(str(worker.stop_grace_period, "stop_grace_period")) > Number(env.JETQ_STOP_TIMEOUT_MS));
    const producerEnv = obj(obj(services.producer, "producer").environment, "producer.environment");
    assert.equal(producerEnv.JETQ_QUEUE, env.JETQ_QUEUE);

    // The image runs a file that exists and copies what that file imports.
    const df = readFileSync(dockerfile, "utf8");
    const cmd = JSON.parse(/^CMD\s+(\[.*\])$/m.exec(df)![1]!) as string[];
    assert.ok(existsSync(join(root, cmd[1]!)), `CMD file ${cmd[1]} exists`);
    for (const [, from] of df.matchAll(/^COPY\s+(\S+)/gm)) {
      for (const f of from!.split(/\s+/)) assert.ok(existsSync(join(root, f)), `COPY source ${f} exists`);
    }
    const producerCmd = arr(obj(services.producer, "producer").command, "producer.command").map(String);
    assert.ok(existsSync(join(root, producerCmd[1]!)));
  });

  it("has Prometheus scraping the NATS exporters and the workers at the ports they serve", () => {
    const prom = obj(services.prometheus, "prometheus");
    const mount = arr(prom.volumes, "prometheus.volumes").map(String).find((v) => v.includes("prometheus.yml"));
    assert.ok(mount);
    const config = obj(parse(readFileSync(resolve(composeDir, mount.split(":")[0]!), "utf8")), "prometheus.yml");
    const jobs = arr(config.scrape_configs, "scrape_configs").map((j) => obj(j, "scrape config"));
    const nats = jobs.find((j) => j.job_name === "nats");
    assert.ok(nats, "a nats job");
    const targets = arr(obj(arr(nats.static_configs, "static_configs")[0], "static config").targets, "targets").map(String);
    assert.equal(targets.length, 3);
    const exported = new Set<string>();
    for (const t of targets) {
      const [host, port] = t.split(":");
      const exporter = obj(services[host!], `service ${host}`);
      assert.equal(port, "7777", "the exporter's default port");
      const command = arr(exporter.command, `${host}.command`).map(String);
      const url = new URL(command.at(-1)!);
      const node = flag(arr(obj(services[url.hostname], url.hostname).command, "command").map(String), "-m");
      assert.equal(url.port, node, `${host} reads the monitoring port of ${url.hostname}`);
      exported.add(url.hostname);
    }
    assert.deepEqual([...exported].sort(), natsServices);
    const workers = jobs.find((j) => j.job_name === "jetq-workers");
    assert.ok(workers, "a workers job");
    const sd = obj(arr(workers.dns_sd_configs, "dns_sd_configs")[0], "dns sd");
    assert.deepEqual(sd.names, ["worker"]);
    assert.equal(String(sd.port), obj(obj(services.worker, "worker").environment, "env").METRICS_PORT);
  });
});

describe("docker-compose on local images and host networking (docker-compose.local.yml, run by test/containers/compose.test.ts)", () => {
  const local = obj(parse(localCompose()), "local compose");
  const localServices = obj(local.services, "services");
  /** Compose's `${VAR:-default}` with every variable unset. */
  const defaults = (v: string): string => v.replace(/\$\{[A-Z0-9_]+:-([^}]*)\}/g, "$1");

  it("keeps docker-compose.yml's services, configs and volumes, with host networking and no ports or hostnames", () => {
    for (const name of [...natsServices, "worker"]) {
      const svc = obj(localServices[name], name);
      assert.equal(svc.network_mode, "host", `${name} uses host networking`);
      assert.equal(svc.ports, undefined, `${name} publishes no ports`);
      assert.equal(svc.hostname, undefined, `${name} sets no hostname`);
      assert.deepEqual(svc.depends_on, obj(services[name], name).depends_on, `${name} keeps its dependencies`);
    }
    for (const name of natsServices) {
      const base = arr(obj(services[name], name).volumes, "volumes").map(String);
      const vols = arr(obj(localServices[name], name).volumes, "volumes").map(String);
      assert.deepEqual(vols.map((v) => v.split(":").slice(1).join(":")), base.map((v) => v.split(":").slice(1).join(":")));
      for (const v of vols.filter((x) => x.startsWith("/"))) assert.ok(existsSync(v.split(":")[0]!), `${v} exists`);
    }
    assert.equal(obj(localServices.worker, "worker").image, "jetq-demo-worker:local");
  });

  it("gives every node its own loopback ports, routes to all three, and points the workers at their client ports", () => {
    const seen = new Set<string>();
    const clients: string[] = [];
    const routeLists = new Set<string>();
    for (const name of natsServices) {
      const command = arr(obj(localServices[name], name).command, "command").map((a) => defaults(String(a)));
      assert.equal(flag(command, "-a"), "127.0.0.1", `${name} listens on loopback only`);
      const ports = [flag(command, "-p")!, flag(command, "-m")!, new URL(flag(command, "--cluster")!).port];
      for (const p of ports) {
        assert.ok(!seen.has(p), `port ${p} of ${name} is its own`);
        seen.add(p);
      }
      clients.push(flag(command, "-p")!);
      routeLists.add(flag(command, "--routes")!);
      const test = arr(obj(obj(localServices[name], name).healthcheck, "healthcheck").test, "test").map(String);
      assert.ok(defaults(test.at(-1)!).includes(`/dev/tcp/127.0.0.1/${flag(command, "-m")}`), `${name}'s healthcheck asks its own monitoring port`);
    }
    assert.equal(routeLists.size, 1, "every node lists the same routes");
    const routes = [...routeLists][0]!.split(",").map((r) => new URL(r).port).sort();
    assert.deepEqual(routes, natsServices.map((n) => new URL(flag(arr(obj(localServices[n], n).command, "c").map((a) => defaults(String(a))), "--cluster")!).port).sort());
    const env = obj(obj(localServices.worker, "worker").environment, "worker env");
    assert.deepEqual(defaults(str(env.NATS_URL, "NATS_URL")).split(",").map((u) => new URL(u).port), clients);
    assert.equal(env.METRICS_PORT, "", "three replicas on one host cannot share a metrics port");
  });

  it("each node's command line passes nats-server -t", { skip: bin ? false : "needs a nats-server binary" }, () => {
    const store = mkdtempSync(join(tmpdir(), "jetq-infra-"));
    try {
      for (const name of natsServices) {
        const svc = obj(localServices[name], name);
        const command = arr(svc.command, "command").map((a) => defaults(String(a)));
        const mount = arr(svc.volumes, "volumes").map(String).find((v) => v.split(":")[1] === flag(command, "-c"))!;
        const args = command.map((a) => (a === flag(command, "-c") ? mount.split(":")[0]! : a));
        args[args.indexOf("-sd") + 1] = join(store, name);
        const r = natsConfigTest(args);
        assert.equal(r.status, 0, `${name}: nats-server -t ${args.join(" ")}\n${r.output}`);
      }
    } finally {
      rmSync(store, { recursive: true, force: true });
    }
  });
});

describe("Kubernetes", () => {
  const docs = (file: string): Obj[] =>
    parseAllDocuments(readFileSync(join(infra, "k8s", file), "utf8")).map((d) => {
      assert.equal(d.errors.length, 0, `${file}: ${d.errors.map((e) => e.message).join("; ")}`);
      return obj(d.toJS(), file);
    });

  it("every YAML file parses", () => {
    const files = readdirSync(join(infra, "k8s")).filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"));
    assert.ok(files.length >= 3);
    for (const f of files) assert.ok(docs(f).length >= 1, f);
  });

  it("scales the worker Deployment with KEDA on its queue's consumer lag, read from the NATS monitoring port", () => {
    const all = [...docs("worker.yaml"), ...docs("keda-scaledobject.yaml")];
    const deployment = all.find((d) => d.kind === "Deployment");
    const scaled = all.find((d) => d.kind === "ScaledObject");
    assert.ok(deployment && scaled);
    assert.equal(scaled.apiVersion, "keda.sh/v1alpha1");
    const dMeta = obj(deployment.metadata, "metadata");
    const sMeta = obj(scaled.metadata, "metadata");
    assert.equal(sMeta.namespace, dMeta.namespace);
    const spec = obj(scaled.spec, "spec");
    assert.equal(obj(spec.scaleTargetRef, "scaleTargetRef").name, dMeta.name);

    const pod = obj(obj(obj(deployment.spec, "spec").template, "template").spec, "pod spec");
    const container = obj(arr(pod.containers, "containers")[0], "container");
    const env = Object.fromEntries(arr(container.env, "env").map((e) => [obj(e, "env").name, obj(e, "env").value]));
    const queue = defineQueue({ name: str(env.JETQ_QUEUE, "JETQ_QUEUE"), replicas: Number(env.JETQ_REPLICAS) });
    assert.ok(Number(pod.terminationGracePeriodSeconds) * 1000 > Number(env.JETQ_STOP_TIMEOUT_MS), "the drain fits the grace period");

    const trigger = obj(arr(spec.triggers, "triggers")[0], "trigger");
    assert.equal(trigger.type, "nats-jetstream");
    const md = obj(trigger.metadata, "trigger metadata");
    assert.equal(md.stream, queue.names.stream);
    assert.equal(md.consumer, queue.names.consumer);
    assert.equal(md.account, "$G");
    assert.ok(Number(md.lagThreshold) > 0);
    const endpoint = new URL(`http://${str(md.natsServerMonitoringEndpoint, "endpoint")}`);

    const values = obj(parse(readFileSync(join(infra, "k8s", "nats-values.yaml"), "utf8")), "nats-values.yaml");
    const config = obj(values.config, "config");
    const monitor = obj(config.monitor, "config.monitor");
    assert.equal(monitor.enabled, true);
    assert.equal(endpoint.port, String(monitor.port));
    assert.equal(endpoint.port, "8222");
    const cluster = obj(config.cluster, "config.cluster");
    assert.equal(cluster.enabled, true);
    assert.ok(Number(cluster.replicas) >= queue.replicas, "enough servers for the queue's replicas");
    const js = obj(config.jetstream, "config.jetstream");
    assert.equal(js.enabled, true);
    assert.equal(obj(js.fileStore, "fileStore").enabled, true);
    // Workers and KEDA reach the same release: nats.<ns> and nats-headless.<ns>.
    const natsUrl = new URL(str(env.NATS_URL, "NATS_URL"));
    assert.equal(natsUrl.hostname.split(".")[1], endpoint.hostname.split(".")[1], "same namespace");
  });
});
