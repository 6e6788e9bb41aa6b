/**
 * batchSocketWrites on real loopback sockets: packets written (corked, uncorked on the next
 * tick, as mqtt-packet does) in one event-loop turn leave in one underlying write, in order;
 * ending the socket right after such writes still finishes and closes it (a deferred uncork
 * inside end() once left a socket ending forever). Waits are on socket events only.
 */

import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { batchSocketWrites } from "../../src/system/socket-writes.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A connected pair: `server` is the accepted side, `client` collects everything until the end. */
async function pair(): Promise<{ server: net.Socket; client: net.Socket; received: Promise<string> }> {
  const srv = net.createServer();
  cleanups.push(() => srv.close());
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", () => resolve()));
  const accepted = new Promise<net.Socket>((resolve) => srv.once("connection", resolve));
  const client = net.connect((srv.address() as net.AddressInfo).port, "127.0.0.1");
  cleanups.push(() => client.destroy());
  const received = new Promise<string>((resolve) => {
    let text = "";
    client.on("data", (d: Buffer) => (text += d.toString()));
    client.on("end", () => resolve(text));
  });
  const server = await accepted;
  cleanups.push(() => server.destroy());
  return { server, client, received };
}

/** One packet the way mqtt-packet writes it: cork, its parts, uncork on the next tick. */
function writePacket(s: net.Socket, parts: string[]): void {
  s.cork();
  for (const p of parts) s.write(p);
  process.nextTick(() => s.uncork());
}

describe("batchSocketWrites", () => {
  it("the packets of one event-loop turn leave in one write, in order", async () => {
    const { server, received } = await pair();
    batchSocketWrites(server);
    batchSocketWrites(server); // a second call changes nothing
    const s = server as net.Socket & {
      _writev: (...a: unknown[]) => unknown;
      _write: (...a: unknown[]) => unknown;
    };
    let writes = 0;
    const writev = s._writev.bind(s);
    const write = s._write.bind(s);
    s._writev = (...a) => (writes++, writev(...a));
    s._write = (...a) => (writes++, write(...a));
    // Three deliveries in one turn, each in its own setImmediate (as aedes delivers).
    await new Promise<void>((resolve) => {
      setImmediate(() => writePacket(server, ["a1", "a2"]));
      setImmediate(() => writePacket(server, ["b1"]));
      setImmediate(() => {
        writePacket(server, ["c1", "c2"]);
        resolve();
      });
    });
    await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
    expect(writes).toBe(1);
    server.end();
    expect(await received).toBe("a1a2b1c1c2");
  });

  it("end() right after a packet whose uncork is still owed: the socket finishes and closes", async () => {
    const { server, received } = await pair();
    batchSocketWrites(server);
    const finished = new Promise<void>((resolve) => server.once("finish", () => resolve()));
    const closed = new Promise<void>((resolve) => server.once("close", () => resolve()));
    // As mqtt.js ends: DISCONNECT written, then end() in a setImmediate queued before the flush.
    writePacket(server, ["bye"]);
    setImmediate(() => server.end());
    await finished;
    expect(await received).toBe("bye");
    await closed;
  });

  it("a packet written just before destroy() reaches the peer (aedes refuses a CONNECT that way)", async () => {
    const { server, client } = await pair();
    batchSocketWrites(server);
    const got = new Promise<string>((resolve) => {
      let text = "";
      client.on("data", (d: Buffer) => (text += d.toString()));
      client.on("close", () => resolve(text));
    });
    writePacket(server, ["connack-5"]);
    process.nextTick(() => process.nextTick(() => server.destroy()));
    expect(await got).toBe("connack-5");
  });

  it("destroy(err) a tick after a write still sends it first, as without batching", async () => {
    const { server, client } = await pair();
    batchSocketWrites(server);
    const closed = new Promise<void>((resolve) => client.on("close", () => resolve()));
    let text = "";
    client.on("data", (d: Buffer) => (text += d.toString()));
    client.on("error", () => undefined);
    server.on("error", () => undefined);
    writePacket(server, ["sent"]);
    process.nextTick(() => process.nextTick(() => server.destroy(new Error("given up"))));
    await closed;
    expect(text).toBe("sent");
  });

  it("turns Nagle's algorithm off", async () => {
    const { server } = await pair();
    const calls: unknown[][] = [];
    const original = server.setNoDelay.bind(server);
    server.setNoDelay = (...a: Parameters<net.Socket["setNoDelay"]>) => (calls.push(a), original(...a));
    batchSocketWrites(server);
    expect(calls).toEqual([[true]]);
  });
});
