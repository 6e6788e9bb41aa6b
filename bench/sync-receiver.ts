// The cloud for bench/sync.ts, in its own process so it does not share the agent's cores'
// event loop: node:http on 127.0.0.1:0, gunzips, parses, de-duplicates on id. Prints its port;
// GET /count answers {"unique","arrivals"}; POST /reset forgets everything.
import http from "node:http";
import type { AddressInfo } from "node:net";
import zlib from "node:zlib";

const seen = new Set<string>();
let arrivals = 0;
const server = http.createServer((req, res) => {
  if (req.method === "GET") {
    res.end(JSON.stringify({ unique: seen.size, arrivals }));
    return;
  }
  if (req.url === "/reset") {
    seen.clear();
    arrivals = 0;
    res.end("{}");
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let body = Buffer.concat(chunks);
    if (req.headers["content-encoding"] === "gzip") body = zlib.gunzipSync(body);
    const parsed = JSON.parse(body.toString("utf8")) as { records: { id: string }[] };
    for (const r of parsed.records) {
      arrivals++;
      seen.add(r.id);
    }
    res.writeHead(200).end();
  });
});
server.keepAliveTimeout = 10_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
});
