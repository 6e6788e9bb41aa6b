/**
 * An `InferenceBackend` (the seam `Gateway` takes in `GatewayDeps.backend`) wrapping Vigil's
 * own `OrtBackend` to time where a batch's inference time goes, without touching src/.
 *
 * Why: onnxruntime-node's `session.run` is not run when called: it is deferred with
 * `setImmediate` and then runs synchronously on the main thread. Time measured around
 * `await session.run()` (as the runner's `inferenceMsTotal` does) therefore also counts one
 * turn of the event loop, during which every pending socket read is handled. Here a marker
 * `setImmediate` is queued just before ORT's own (callbacks run in order), splitting each call
 * into the wait for the event loop and the native run (ORT's callback, its promise resolution,
 * Vigil's output conversion).
 */

import type { InferenceBackend, ModelSession, SessionOptions } from "../../src/inference/ort.js";
import { OrtBackend } from "../../src/inference/ort.js";

export interface InferenceTiming {
  calls: number;
  items: number;
  /** From the call to the moment ORT's deferred callback is about to run. */
  waitMs: number;
  /** From then to the call's promise resolving: the native run and the output copy. */
  runMs: number;
  /** Run time of each call (the first `MAX_SAMPLES`), for its distribution. */
  runSamplesMs: number[];
  /** Largest batch seen. */
  maxBatch: number;
}

const MAX_SAMPLES = 200_000;

export function newTiming(): InferenceTiming {
  return { calls: 0, items: 0, waitMs: 0, runMs: 0, runSamplesMs: [], maxBatch: 0 };
}

export class TimedBackend implements InferenceBackend {
  timing = newTiming();
  private readonly inner = new OrtBackend();

  availableProviders(): string[] {
    return this.inner.availableProviders();
  }

  async createSession(modelPath: string, options: SessionOptions): Promise<ModelSession> {
    const session = await this.inner.createSession(modelPath, options);
    return {
      inputs: session.inputs,
      outputs: session.outputs,
      provider: session.provider,
      release: () => session.release(),
      run: async (inputName, data, dims) => {
        const called = performance.now();
        let fired = called;
        setImmediate(() => {
          fired = performance.now();
        });
        const out = await session.run(inputName, data, dims);
        const done = performance.now();
        const t = this.timing;
        const batch = dims[0] ?? 1;
        t.calls++;
        t.items += batch;
        t.maxBatch = Math.max(t.maxBatch, batch);
        t.waitMs += fired - called;
        t.runMs += done - fired;
        if (t.runSamplesMs.length < MAX_SAMPLES) t.runSamplesMs.push(done - fired);
        return out;
      },
    };
  }
}
