/**
 * Renders the configuration reference (docs/configuration.md) from the schema, so the
 * document cannot drift from the code: `npm run docs:config` writes it and a unit test
 * fails when the committed file differs from what this renders.
 */

import { envName, schema, walkLeaves, type Leaf } from "./schema.js";

const FORMAT_NAMES: Record<string, string> = {
  "gateway-id": "string of `[A-Za-z0-9_.-]`",
  "non-empty-string": "non-empty string",
  "topic-level": "one topic level",
  "positive-int": "integer > 0",
  "positive-number": "number > 0",
  nat: "integer >= 0",
  port: "port (0-65535)",
  "mqtt-url": "mqtt://, mqtts://, ws:// or wss:// URL",
  "string-array": "list of strings",
  subscriptions: "list of subscriptions",
  bindings: "list of bindings",
  providers: '"auto" or list of providers',
  workers: '"auto" or integer >= 0',
  destinations: "list of destinations",
};

function formatName(format: unknown): string {
  if (Array.isArray(format)) return `one of ${format.map((v) => JSON.stringify(v)).join(", ")}`;
  if (format === String) return "string";
  if (format === Boolean) return "boolean";
  if (format === Number) return "number";
  if (typeof format === "string") return FORMAT_NAMES[format] ?? format;
  return "value";
}

function defaultText(path: string, leaf: Leaf): string {
  if (path === "gatewayId") return "the host name";
  if (leaf.sensitive && leaf.default === "") return '`""`';
  return `\`${JSON.stringify(leaf.default)}\``;
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

export function renderConfigReference(): string {
  const lines: string[] = [
    "# Configuration reference",
    "",
    "<!-- Generated from src/config/schema.ts by `npm run docs:config`. Do not edit by hand. -->",
    "",
    "Vigil reads one JSON (or YAML) file given with `--config`. Every key may be left out (it takes",
    "its default) and every key can be overridden by an environment variable, which wins over the",
    "file. List-valued keys take JSON in the environment, e.g.",
    '`VIGIL_INGEST_SUBSCRIPTIONS=\'[{"topic":"site/{asset}/{signal}"}]\'`. Secrets can be given as a',
    "path in the matching `...File` key; the file's content (without a trailing newline) is used.",
    "`vigil check-config --config FILE` prints every problem with its key path and exits 1.",
    "",
    "Rules across keys: the embedded broker on an address other than loopback needs",
    "`mqtt.embeddedBroker.username` and `password`; the local API on an address other than",
    "loopback needs `http.token`; `mqtt.reconnect.minDelayMs` may not exceed `maxDelayMs`.",
    "",
  ];
  let section = "";
  walkLeaves(schema, (path, leaf) => {
    const top = path.includes(".") ? path.slice(0, path.indexOf(".")) : "(top level)";
    if (top !== section) {
      if (section !== "") lines.push("");
      section = top;
      lines.push(
        `## ${top}`,
        "",
        "| key | default | format | environment | meaning |",
        "|---|---|---|---|---|",
      );
    }
    lines.push(
      `| \`${path}\` | ${escapeCell(defaultText(path, leaf))} | ${escapeCell(formatName(leaf.format))} | \`${envName(path)}\` | ${escapeCell(leaf.doc)}${leaf.sensitive ? " *(secret: never logged)*" : ""} |`,
    );
  });
  lines.push("");
  return lines.join("\n");
}
