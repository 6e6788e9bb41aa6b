/**
 * The sensor side of the benchmark, run as a CHILD process (so that its CPU is not the
 * measured process's): a plain mqtt.js client publishing the traffic of `lib/workload.ts`.
 *
 * Protocol (IPC, `lib/protocol.ts`): `ping` -> `pong` (clock offset); `prepare` builds every
 * payload and topic in memory, connects, -> `prepared`; `go` publishes, disconnects,
 * -> `done` with the time each message was handed to mqtt.js. The same child serves the relay
 * ceiling and the Vigil runs, so both see byte-identical traffic from identical code.
 */

import mqtt, { type MqttClient } from "mqtt";
import { nowMs } from "./lib/clock.js";
import type { FromChild, RunPlan, ToChild } from "./lib/protocol.js";
import { PayloadSource, assetName, rowTopic, workload } from "./lib/workload.js";

function send(msg: FromChild): void {
  process.send?.(msg);
}

interface Prepared {
  plan: RunPlan;
  client: MqttClient;
  topics: string[];
  payloads: Buffer[];
}

let prepared: Prepared | undefined;
const sources = new Map<string, PayloadSource>();

async function prepare(plan: RunPlan): Promise<void> {
  const key = `${plan.workload}:${plan.assets}:${plan.t0Ms}:${plan.signals}`;
  let source = sources.get(key);
  if (!source) {
    source = new PayloadSource(plan.workload, plan.assets, plan.t0Ms, plan.signals);
    sources.set(key, source);
  }
  const w = workload(plan.workload);
  const topicOf = Array.from({ length: plan.assets }, (_, a) => rowTopic(assetName(w, a), plan.topicRoot));
  const topics: string[] = [];
  const payloads: Buffer[] = [];
  let bytes = 0;
  for (let r = plan.rowFrom; r < plan.rowTo; r++) {
    for (let a = 0; a < plan.assets; a++) {
      const p = Buffer.from(source.payload(a, r));
      bytes += p.length;
      topics.push(topicOf[a] as string);
      payloads.push(p);
    }
  }
  const client = await mqtt.connectAsync(plan.url, {
    clientId: `bench-publisher-${process.pid}-${plan.rowFrom}`,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    clean: true,
  });
  // Paced traffic stands for many sensors, each on its own connection sending now and then, where
  // Nagle's algorithm never holds a packet; on this one shared connection it would (a packet
  // written while the previous one is unacknowledged waits for the delayed ACK): measured, the
  // bare relay's p50 at 5,000 msg/s was 17.5 ms with it. Floods keep the default (coalescing
  // helps the publisher keep up, for every target alike).
  if (plan.mode === "paced") (client.stream as { setNoDelay?: (on: boolean) => unknown }).setNoDelay?.(true);
  prepared = { plan, client, topics, payloads };
  send({ type: "prepared", payloadBytes: bytes });
}

function flood(p: Prepared, sentAt: Float64Array): Promise<number> {
  const total = p.payloads.length;
  const maxInflight = Math.max(1, p.plan.inflight);
  let next = 0;
  let done = 0;
  let inflight = 0;
  return new Promise((resolve) => {
    let scheduled = false;
    const onWritten = (): void => {
      inflight--;
      done++;
      if (done === total) {
        resolve(nowMs());
        return;
      }
      if (!scheduled) {
        scheduled = true;
        setImmediate(pump);
      }
    };
    // mqtt.js calls back a QoS 0 publish once the socket took it (at once, or on 'drain'):
    // at most `maxInflight` waiting keeps memory bounded and follows TCP back-pressure.
    const pump = (): void => {
      scheduled = false;
      while (next < total && inflight < maxInflight) {
        const i = next++;
        inflight++;
        sentAt[i] = nowMs();
        p.client.publish(p.topics[i] as string, p.payloads[i] as Buffer, { qos: 0 }, onWritten);
      }
    };
    pump();
  });
}

function paced(p: Prepared, sentAt: Float64Array, startMs: number): Promise<number> {
  const total = p.payloads.length;
  const intervalMs = 1000 / p.plan.ratePerSec;
  let next = 0;
  return new Promise((resolve) => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((nowMs() - startMs) / intervalMs) + 1);
      while (next < due) {
        const i = next++;
        sentAt[i] = nowMs();
        p.client.publish(p.topics[i] as string, p.payloads[i] as Buffer, { qos: 0 });
      }
      if (next >= total) resolve(nowMs());
      else setTimeout(tick, Math.max(0, Math.min(5, startMs + next * intervalMs - nowMs())));
    };
    tick();
  });
}

async function go(): Promise<void> {
  const p = prepared;
  if (!p) throw new Error("go before prepare");
  prepared = undefined;
  const sentAt = new Float64Array(p.payloads.length);
  const startedMs = nowMs();
  const endedMs = p.plan.mode === "flood" ? await flood(p, sentAt) : await paced(p, sentAt, startedMs);
  await p.client.endAsync();
  send({ type: "done", startedMs, endedMs, sent: p.payloads.length, sentAtMs: sentAt });
}

process.on("message", (raw: ToChild) => {
  const run = async (): Promise<void> => {
    switch (raw.type) {
      case "ping":
        send({ type: "pong", id: raw.id, childMs: nowMs() });
        return;
      case "prepare":
        await prepare(raw.plan);
        return;
      case "go":
        await go();
        return;
      case "exit":
        process.disconnect?.();
        return;
    }
  };
  run().catch((err: unknown) => {
    send({ type: "error", message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});
