/**
 * The peer a user would build instead of Vigil: the same pipeline as a Node-RED flow, the way
 * Node-RED's own nodes and its documentation suggest — mqtt in (JSON) → function "window" (per
 * asset, the model's time window, features and z-score, from the manifest) → function "onnx"
 * (onnxruntime-node, one `session.run` per window: Node-RED has no batching) → function
 * "alerts" (the manifest's rules with hysteresis, per asset) → function "sqlite"
 * (better-sqlite3, WAL, synchronous FULL like Vigil's default, one INSERT — one transaction —
 * per record) → mqtt out (predictions QoS 0, alerts QoS 1, on Vigil's topics and payload shape).
 * Libraries reach the function nodes through `functionGlobalContext` (settings.js), the same
 * onnxruntime-node and better-sqlite3 builds Vigil uses, so the comparison is of the pipelines.
 *
 * For the two shapes the bench's workloads use (bench/lib/workload.ts): turbofan-rul's count
 * window with sequence features (z-score per signal, layout NTC or NCT) and pump-health's time
 * window with rows of every signal at every `sampleMs`, aggregate features, z-score; outputs [1,1].
 */

interface Manifest {
  name: string;
  version: string;
  input: {
    tensor: string;
    signals: string[];
    window: { type: string; size?: number; hop?: number; sizeMs?: number; hopMs?: number; sampleMs?: number };
    features: { type: string; functions?: string[] };
    layout?: string;
    normalize: { type: string; mean: number[]; std: number[] };
  };
  outputs: { tensor: string; name: string }[];
  alerts: {
    id: string;
    severity: string;
    output: string;
    op: string;
    value: number;
    forWindows?: number;
    clearValue?: number;
  }[];
}

/** Function-node code for a count window: per asset, the last `size` rows; every `hop` rows, the z-scored sequence. */
function countWindowCode(m: Manifest): string {
  const { size, hop } = m.input.window;
  if (!size || !hop || m.input.features.type !== "sequence")
    throw new Error("count window without sequence features");
  return `
const counters = global.get("counters");
counters.payloads++;
const SIGNALS = ${JSON.stringify(m.input.signals)};
const MEAN = ${JSON.stringify(m.input.normalize.mean)};
const STD = ${JSON.stringify(m.input.normalize.std)};
const SIZE = ${size}, HOP = ${hop}, C = SIGNALS.length, NCT = ${JSON.stringify(m.input.layout === "NCT")};
const asset = msg.topic.split("/")[1];
const row = msg.payload;
if (!row || typeof row.ts !== "number" || !row.values) return null;
const v = SIGNALS.map((s) => row.values[s]);
if (v.some((x) => typeof x !== "number")) return null;
let assets = context.get("assets");
if (!assets) { assets = {}; context.set("assets", assets); }
const st = assets[asset] || (assets[asset] = { rows: [], n: 0 });
st.rows.push({ ts: row.ts, v });
st.n++;
if (st.rows.length > SIZE) st.rows.shift();
if (st.rows.length < SIZE || (st.n - SIZE) % HOP !== 0) return null;
const features = new Array(SIZE * C);
st.rows.forEach((r, t) => r.v.forEach((x, c) => {
  features[NCT ? c * SIZE + t : t * C + c] = (x - MEAN[c]) / (STD[c] === 0 ? 1 : STD[c]);
}));
msg.asset = asset;
msg.windowStart = st.rows[0].ts;
msg.windowEnd = row.ts;
msg.features = features;
msg.dims = NCT ? [1, C, SIZE] : [1, SIZE, C];
return msg;
`;
}

/** Function-node code for a time window: per asset, the last rows; at a row ending a window, the window's features. */
function windowCode(m: Manifest): string {
  if (m.input.window.type === "count") return countWindowCode(m);
  const { sizeMs, hopMs, sampleMs } = m.input.window;
  if (!sizeMs || !hopMs || !sampleMs) throw new Error("time window without sizeMs, hopMs, sampleMs");
  return `
const counters = global.get("counters");
counters.payloads++;
const SIGNALS = ${JSON.stringify(m.input.signals)};
const FUNCTIONS = ${JSON.stringify(m.input.features.functions ?? [])};
const MEAN = ${JSON.stringify(m.input.normalize.mean)};
const STD = ${JSON.stringify(m.input.normalize.std)};
const SIZE = ${sizeMs}, HOP = ${hopMs}, SAMPLE = ${sampleMs};
const asset = msg.topic.split("/")[1];
const row = msg.payload;
if (!row || typeof row.ts !== "number" || !row.values) return null;
let assets = context.get("assets");
if (!assets) { assets = {}; context.set("assets", assets); }
const rows = assets[asset] || (assets[asset] = []);
rows.push({ ts: row.ts, v: SIGNALS.map((s) => row.values[s]) });
if (rows.length > SIZE / SAMPLE + 1) rows.shift();
// The row at ts = end closes the window [end - SIZE, end) (it belongs to the next one).
if (row.ts % HOP !== 0) return null;
const inWindow = rows.filter((r) => r.ts >= row.ts - SIZE && r.ts < row.ts);
if (inWindow.length !== SIZE / SAMPLE) return null;
const features = [];
SIGNALS.forEach((_, s) => {
  const x = inWindow.map((r) => r.v[s]);
  const n = x.length;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const std = Math.sqrt(x.reduce((a, b) => a + (b - mean) * (b - mean), 0) / n);
  const im = (n - 1) / 2;
  let sxy = 0, sxx = 0;
  x.forEach((v, i) => { sxy += (i - im) * (v - mean); sxx += (i - im) * (i - im); });
  const rms = Math.sqrt(x.reduce((a, b) => a + b * b, 0) / n);
  const f = { mean, std, slope: sxx === 0 ? 0 : sxy / sxx, rms };
  for (const name of FUNCTIONS) features.push(f[name]);
});
msg.asset = asset;
msg.windowStart = row.ts - SIZE;
msg.windowEnd = row.ts;
msg.features = features.map((v, i) => (v - MEAN[i]) / (STD[i] === 0 ? 1 : STD[i]));
return msg;
`;
}

const ONNX_INIT = `
const ort = global.get("ort");
const session = await ort.InferenceSession.create(global.get("modelPath"), {
  executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1,
  executionMode: "sequential", graphOptimizationLevel: "all",
});
context.set("session", session);
`;

function onnxCode(m: Manifest): string {
  return `
const ort = global.get("ort");
const session = context.get("session");
const OUTPUTS = ${JSON.stringify(m.outputs.map((o) => [o.tensor, o.name]))};
session.run({ ${JSON.stringify(m.input.tensor)}: new ort.Tensor("float32", msg.features, msg.dims || [1, msg.features.length]) }).then((out) => {
  msg.outputs = {};
  for (const [tensor, name] of OUTPUTS) msg.outputs[name] = Number(out[tensor].data[0]);
  node.send(msg);
  node.done();
}, (err) => node.error(err, msg));
return null;
`;
}

function alertsCode(m: Manifest): string {
  return `
const RULES = ${JSON.stringify(m.alerts)};
let states = context.get("states");
if (!states) { states = {}; context.set("states", states); }
const out = [{ topic: "prediction", payload: {
  gatewayId: "bench", asset: msg.asset, model: ${JSON.stringify(m.name)}, modelVersion: ${JSON.stringify(m.version)},
  ts: msg.windowEnd, windowStart: msg.windowStart, windowEnd: msg.windowEnd, outputs: msg.outputs } }];
const mine = states[msg.asset] || (states[msg.asset] = {});
for (const rule of RULES) {
  const st = mine[rule.id] || (mine[rule.id] = { raised: false, consecutive: 0 });
  const x = msg.outputs[rule.output];
  if (!Number.isFinite(x)) { st.consecutive = 0; continue; }
  const above = rule.op === ">" ? x > rule.value : rule.op === ">=" ? x >= rule.value : rule.op === "<" ? x < rule.value : x <= rule.value;
  const clear = rule.clearValue ?? rule.value;
  if (st.raised) {
    const clears = rule.op === ">" || rule.op === ">=" ? x < clear : x > clear;
    if (clears) { st.raised = false; st.consecutive = 0; out.push({ topic: "alert", payload: { gatewayId: "bench", asset: msg.asset, rule: rule.id, severity: rule.severity, state: "cleared", value: x, ts: msg.windowEnd } }); }
  } else if (above) {
    st.consecutive++;
    if (st.consecutive >= Math.max(1, rule.forWindows ?? 1)) { st.raised = true; st.consecutive = 0; out.push({ topic: "alert", payload: { gatewayId: "bench", asset: msg.asset, rule: rule.id, severity: rule.severity, state: "raised", value: x, ts: msg.windowEnd } }); }
  } else st.consecutive = 0;
}
return [out];
`;
}

const SQLITE_INIT = `
const Database = global.get("Database");
const db = new Database(global.get("dbFile"));
db.pragma("journal_mode = WAL");
db.pragma("synchronous = FULL");
db.exec("CREATE TABLE IF NOT EXISTS records (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, asset TEXT, ts INTEGER NOT NULL, data TEXT NOT NULL)");
context.set("db", db);
context.set("insert", db.prepare("INSERT INTO records (id, kind, asset, ts, data) VALUES (?, ?, ?, ?, ?)"));
`;

const SQLITE_CODE = `
const insert = context.get("insert");
const kind = msg.topic;
const id = global.get("randomUUID")();
const info = insert.run(id, kind, msg.payload.asset, msg.payload.ts, JSON.stringify(msg.payload));
msg.payload.id = id;
msg.payload.seq = Number(info.lastInsertRowid);
if (kind === "prediction") global.get("counters").predictions++;
msg.qos = kind === "alert" ? 1 : 0;
msg.topic = "vigil/bench/" + (kind === "alert" ? "alerts/" : "predictions/") + msg.payload.asset;
return msg;
`;

const SQLITE_CLOSE = `
const db = context.get("db");
if (db) db.close();
`;

/** The flow file for a broker at `url` (mqtt://host:port). */
export function buildFlow(manifest: Manifest, brokerUrl: string): unknown[] {
  const u = new URL(brokerUrl);
  const fn = (
    id: string,
    name: string,
    func: string,
    wires: string[],
    initialize = "",
    finalize = "",
  ): unknown => ({
    id,
    type: "function",
    z: "f0000000000000f0",
    name,
    func,
    outputs: 1,
    timeout: 0,
    noerr: 0,
    initialize,
    finalize,
    libs: [],
    wires: [wires],
  });
  return [
    // Node ids are hex like the editor's: Node-RED takes any property equal to a node id for a reference.
    { id: "f0000000000000f0", type: "tab", label: "vigil peer", disabled: false },
    {
      id: "f0000000000000b0",
      type: "mqtt-broker",
      name: "plant",
      broker: u.hostname,
      port: u.port,
      clientid: "bench-nodered",
      autoConnect: true,
      usetls: false,
      protocolVersion: "4",
      keepalive: "60",
      cleansession: true,
      autoUnsubscribe: true,
      birthTopic: "",
      closeTopic: "",
      willTopic: "",
    },
    {
      id: "f0000000000000a0",
      type: "mqtt in",
      z: "f0000000000000f0",
      name: "rows",
      topic: "plant/+/row",
      qos: "0",
      datatype: "json",
      broker: "f0000000000000b0",
      nl: false,
      rap: true,
      rh: 0,
      inputs: 0,
      wires: [["f0000000000000a1"]],
    },
    fn("f0000000000000a1", "window", windowCode(manifest), ["f0000000000000a2"]),
    fn(
      "f0000000000000a2",
      "onnx",
      onnxCode(manifest),
      ["f0000000000000a3"],
      ONNX_INIT,
      'const s = context.get("session"); if (s) s.release();',
    ),
    fn("f0000000000000a3", "alerts", alertsCode(manifest), ["f0000000000000a4"]),
    fn("f0000000000000a4", "sqlite", SQLITE_CODE, ["f0000000000000a5"], SQLITE_INIT, SQLITE_CLOSE),
    {
      id: "f0000000000000a5",
      type: "mqtt out",
      z: "f0000000000000f0",
      name: "outputs",
      topic: "",
      qos: "",
      retain: "false",
      broker: "f0000000000000b0",
      wires: [],
    },
  ];
}
