/**
 * What the container tests (test/containers) need from Docker besides testcontainers: a check
 * that an engine answers, with the message that says how to get one, and the docker client.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** The docker client scripts/docker.sh chose (JETQ_DOCKER_CLI), else Debian's, else `docker`. */
export function dockerCli(): string {
  return process.env.JETQ_DOCKER_CLI || (existsSync("/usr/bin/docker") ? "/usr/bin/docker" : "docker");
}

let checked: string | undefined;

/**
 * Throws (so the test fails, never skips) when no Docker engine answers. The container tests
 * run only when asked for (`.ci/run`, `npm run test:containers`), so an absent engine then is
 * an error to report, not a gap to hide.
 */
export function requireDocker(): void {
  if (checked === "ok") return;
  const r = spawnSync(dockerCli(), ["info", "--format", "{{.ServerVersion}}"], { encoding: "utf8", timeout: 15_000 });
  if (r.status !== 0) {
    throw new Error(
      `These tests need a Docker engine, and none answers (DOCKER_HOST=${process.env.DOCKER_HOST ?? "unset"}: ${(r.stderr || String(r.error ?? "")).trim().split("\n")[0]}).\n` +
        "Run them through `npm run test:containers` (JETQ_DOCKER=1): scripts/docker.sh uses a running engine, or on Debian as root " +
        "installs docker.io and starts a private one. Without Docker, `npm test` runs everything else on the nats-server binary.",
    );
  }
  checked = "ok";
}

/** Runs the docker client; throws with its output when it fails. */
export function docker(args: string[], opts: { timeoutMs?: number; input?: string } = {}): string {
  const r = spawnSync(dockerCli(), args, { encoding: "utf8", timeout: opts.timeoutMs ?? 120_000, input: opts.input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(" ")} failed (${r.status ?? r.signal}):\n${r.stdout}${r.stderr}${r.error ? String(r.error) : ""}`);
  return r.stdout;
}
