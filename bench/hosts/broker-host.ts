/**
 * An aedes broker (the one Vigil embeds) in a process of its own, for a peer that needs an
 * external broker (Node-RED) when mosquitto is not installed. 127.0.0.1, port chosen by the OS.
 */

import { EmbeddedBroker } from "../../src/broker/embedded.js";
import { silentLogger } from "../../src/system/logger.js";
import { serve } from "../lib/rpc.js";

let broker: EmbeddedBroker | undefined;

serve({
  async start(): Promise<{ url: string }> {
    broker = new EmbeddedBroker({ host: "127.0.0.1", port: 0 }, silentLogger());
    await broker.start();
    return { url: broker.url() };
  },
  async shutdown(): Promise<void> {
    await broker?.stop();
  },
});
