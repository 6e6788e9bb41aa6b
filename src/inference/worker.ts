/**
 * An inference worker thread: owns ONNX Runtime sessions and runs them off the main thread.
 *
 * Contract: started by `pool.ts`; says `ready` with the providers ORT knows; then answers each
 * request of `worker-protocol.ts` with exactly one reply carrying its `id`, in the order the
 * work finishes (ORT runs one call at a time here, so that is the order received). A failing
 * call is answered with an `error` reply and the worker keeps serving; only an exception
 * outside a request (a bug) ends the thread, which the pool sees and replaces.
 */

import { parentPort } from "node:worker_threads";
import { VigilError, errorMessage } from "../errors.js";
import { OrtBackend, type ModelSession } from "./ort.js";
import type { FromWorker, ToWorker, WireTensor } from "./worker-protocol.js";

const port = parentPort;
if (!port) throw new Error("inference worker started outside a worker thread");

const backend = new OrtBackend();
const sessions = new Map<number, ModelSession>();

function reply(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(msg, transfer);
}

function session(id: number): ModelSession {
  const s = sessions.get(id);
  if (!s) throw new VigilError("INFERENCE_NO_SESSION", `no session ${id} in this worker`);
  return s;
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case "load": {
      const s = await backend.createSession(msg.modelPath, msg.options);
      sessions.set(msg.session, s);
      reply({
        type: "loaded",
        id: msg.id,
        inputs: [...s.inputs],
        outputs: [...s.outputs],
        provider: s.provider,
        details: s.details,
      });
      return;
    }
    case "run": {
      const started = performance.now();
      const s = session(msg.session);
      const out = await s.run(msg.inputName, msg.data, msg.dims);
      const runMs = s.lastRunMs ?? performance.now() - started;
      const outputs: WireTensor[] = [];
      const transfer: ArrayBuffer[] = [];
      for (const [name, t] of out) {
        outputs.push({ name, data: t.data, dims: t.dims });
        if (t.data.buffer instanceof ArrayBuffer && !transfer.includes(t.data.buffer))
          transfer.push(t.data.buffer);
      }
      reply({ type: "result", id: msg.id, outputs, runMs }, transfer);
      return;
    }
    case "benchmark": {
      const s = session(msg.session);
      if (!s.benchmark) throw new VigilError("INFERENCE_NO_BENCHMARK", "this session cannot be benchmarked");
      const r = await s.benchmark(msg.inputName, msg.data, msg.dims, msg.runs, msg.warmupRuns);
      reply({ type: "benchmarked", id: msg.id, ...r });
      return;
    }
    case "release": {
      const s = sessions.get(msg.session);
      sessions.delete(msg.session);
      await s?.release();
      reply({ type: "released", id: msg.id });
      return;
    }
  }
}

port.on("message", (msg: ToWorker) => {
  handle(msg).catch((err: unknown) => {
    reply({
      type: "error",
      id: msg.id,
      code: err instanceof VigilError ? err.code : "INFERENCE_FAILED",
      message: errorMessage(err),
      retriable: err instanceof VigilError ? err.retriable : false,
    });
  });
});

const providers = backend.availableProviders();
const unavailable: Record<string, string> = {};
for (const p of providers) {
  const why = backend.unavailableReason(p);
  if (why) unavailable[p] = why;
}
reply({ type: "ready", providers, unavailable });
