/**
 * Summarises a V8 CPU profile (node:inspector `Profiler.stop`) of a host's MAIN thread: where
 * its busy time went, by component (a package under node_modules, a folder of src/, Node's
 * internals, garbage collection) and by function. Idle time is reported apart, so shares are of
 * the time the thread was busy. Pure.
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
}

export interface CpuProfileLike {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface ProfileSummary {
  wallMs: number;
  busyMs: number;
  idleMs: number;
  /** Busy time by component, largest first: [component, ms, share of busy]. */
  byComponent: [string, number, number][];
  /** Busy time by function, largest first: [function @ file:line, ms, share of busy]. */
  byFunction: [string, number, number][];
}

function component(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (functionName === "(garbage collector)") return "garbage collection";
  if (functionName === "(idle)") return "(idle)";
  if (functionName === "(program)") return "V8 and native code outside JS (program)";
  if (url === "") return functionName.startsWith("(") ? functionName : "native (no script)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `npm: ${nm[1]}`;
  if (url.startsWith("node:")) return `node: ${url.slice(5).split("/")[0]}`;
  const src = /\/src\/([^/]+)(\/[^/]+)?/.exec(url);
  if (src) return `vigil: src/${src[1]}${src[2] && !src[1]?.endsWith(".ts") ? "" : ""}`;
  const bench = /\/bench\//.exec(url);
  if (bench) return "bench harness";
  return url.replace(/^file:\/\//, "");
}

function place(frame: CallFrame): string {
  const file = frame.url.replace(/^file:\/\//, "").replace(/^.*\/(node_modules|src)\//, "$1/");
  return `${frame.functionName || "(anonymous)"} @ ${file || "native"}:${frame.lineNumber + 1}`;
}

export function summariseProfile(profile: CpuProfileLike, top = 25): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // Each sample's time is the delta to the next sample.
  for (let i = 0; i < samples.length; i++) {
    const id = samples[i] as number;
    const dt = deltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, dt));
  }
  const comps = new Map<string, number>();
  const funcs = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    totalUs += us;
    const c = component(node.callFrame);
    if (c === "(idle)") {
      idleUs += us;
      continue;
    }
    comps.set(c, (comps.get(c) ?? 0) + us);
    const f = place(node.callFrame);
    funcs.set(f, (funcs.get(f) ?? 0) + us);
  }
  const busyUs = totalUs - idleUs;
  const rank = (m: Map<string, number>): [string, number, number][] =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [k, us / 1000, busyUs > 0 ? us / busyUs : 0]);
  return {
    wallMs: (profile.endTime - profile.startTime) / 1000,
    busyMs: busyUs / 1000,
    idleMs: idleUs / 1000,
    byComponent: rank(comps),
    byFunction: rank(funcs),
  };
}
