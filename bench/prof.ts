// Summarises a V8 .cpuprofile (from `npm run bench -- --profile`): self time by function and by
// package, so the jetq and raw profiles of one scenario can be compared side by side.
// Usage: node bench/prof.ts <file.cpuprofile> [top=25]
import { readFileSync } from "node:fs";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function summarise(file: string, top = 25): string {
  const p = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const short = url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|bench)\//, "$1/");
    const key = `${functionName || "(anonymous)"}  ${short}:${lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    let group = "other";
    if (functionName === "(garbage collector)") group = "GC";
    else if (functionName === "(idle)" || functionName === "(program)") group = functionName;
    else if (/node_modules\/(@[^/]+\/[^/]+|[^/]+)/.test(url)) group = /node_modules\/(@[^/]+\/[^/]+|[^/]+)/.exec(url)![1]!;
    else if (url.includes("/src/")) group = "jetq src/";
    else if (url.includes("/bench/")) group = "bench/";
    else if (url.startsWith("node:")) group = "node internals";
    else if (url === "") group = "native/builtins";
    pkg.set(group, (pkg.get(group) ?? 0) + us);
  }
  const busy = total - (pkg.get("(idle)") ?? 0);
  const pct = (us: number): string => `${((us / busy) * 100).toFixed(1).padStart(5)} %`;
  const lines = [`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy (percentages of busy time)`, "", "by package:"];
  for (const [k, v] of [...pkg].filter(([k]) => k !== "(idle)").sort((a, b) => b[1] - a[1])) lines.push(`  ${pct(v)}  ${k}`);
  // Inclusive time of jetq's own functions: what each costs with everything it calls.
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const incl = new Map<string, number>();
  for (const [id, us] of self) {
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const cf = byId.get(cur)!.callFrame;
      if (!cf.url.includes("/src/")) continue;
      const key = `${cf.functionName || "(anonymous)"}  ${cf.url.replace(/^.*\/src\//, "src/")}:${cf.lineNumber + 1}`;
      if (seen.has(key)) continue;
      seen.add(key);
      incl.set(key, (incl.get(key) ?? 0) + us);
    }
  }
  if (incl.size > 0) {
    lines.push("", "jetq functions (inclusive time):");
    for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  }
  lines.push("", "by function (self time):");
  for (const [k, v] of [...fn].filter(([k]) => !k.startsWith("(idle)")).sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`  ${pct(v)}  ${k}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node bench/prof.ts <file.cpuprofile> [top]");
    process.exit(2);
  }
  console.log(summarise(file, Number(process.argv[3] ?? 25)));
}
