/**
 * Low-latency, low-cost writes for an MQTT socket: Nagle's algorithm off, and the writes made
 * in one event-loop turn sent together.
 *
 * Why: MQTT.js and aedes write every packet through mqtt-packet's `writeToStream`, which corks
 * the stream and uncorks it on the next tick — so each packet becomes one `writev` syscall.
 * With Nagle's algorithm on, a packet written while the previous one is unacknowledged waits
 * for the peer's delayed ACK (up to 40 ms on Linux: predictions arrived 20 ms late at 1,000
 * msg/s); with it off, every `writev` is sent at once, which on loopback runs the receiver's
 * TCP path inside the sender's syscall (a flood of predictions spent 20 % of the main thread in
 * `writev`). `batchSocketWrites` does both halves: Nagle off, and the uncork deferred to a
 * `setImmediate` — packets written during one turn leave in one `writev` at the start of the
 * next, so a packet waits at most one event-loop turn instead of a delayed ACK.
 *
 * Contract: `batchSocketWrites(socket)` changes only that socket: its `uncork()` calls are
 * counted and replayed in one `setImmediate` (cork depth and write order are kept); `end()`
 * and `destroy()` first replay what is owed and from then on uncork at once, so what was
 * written a tick or more before them is handed to the socket before them, and ending,
 * finishing and closing happen as without it.
 * Write callbacks now come one turn later (after other `setImmediate`s of the turn the write
 * was made in); neither aedes nor MQTT.js depends on that order. Calling it twice on one
 * socket has no further effect. No I/O of its own.
 */

import type net from "node:net";

const BATCHED = Symbol("vigil.batchedWrites");

type Batched = net.Socket & { [BATCHED]?: true };

export function batchSocketWrites(socket: net.Socket): void {
  const s = socket as Batched;
  if (s[BATCHED]) return;
  s[BATCHED] = true;
  socket.setNoDelay(true);
  const uncork = socket.uncork.bind(socket);
  const end = socket.end.bind(socket);
  const destroy = socket.destroy.bind(socket);
  let owed = 0;
  // From end() on, uncork at once again: Node's end() uncorks fully and then decides whether the
  // stream can finish; a deferred uncork there left a socket ending forever (never 'finish').
  let ending = false;
  const flush = (): void => {
    const n = owed;
    owed = 0;
    for (let i = 0; i < n; i++) uncork();
  };
  socket.uncork = (): void => {
    if (ending) uncork();
    else if (owed++ === 0) setImmediate(flush);
  };
  socket.end = ((...args: Parameters<net.Socket["end"]>) => {
    ending = true;
    flush();
    return end(...args);
  }) as net.Socket["end"];
  // What was written a tick or more before destroy() went out before it without batching (the
  // uncork ran on the next tick, the destroy later): aedes writes a refusing CONNACK and then
  // destroys. With an error too (on a broken connection the owed writes' callbacks then see
  // EPIPE rather than ECONNRESET; the socket's own 'error' is unchanged).
  socket.destroy = ((...args: Parameters<net.Socket["destroy"]>) => {
    ending = true;
    flush();
    return destroy(...args);
  }) as net.Socket["destroy"];
}
