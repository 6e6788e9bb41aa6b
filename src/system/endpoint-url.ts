/**
 * Validation of the URL of a service the agent or a tool connects to (an MQTT broker, an HTTP
 * API). Pure. One function, so that every place that takes such a URL (the `--broker` and
 * `--url` options of the CLI, `mqtt.url`, sync destinations) refuses the same things:
 *
 * - not a URL, or a scheme other than the ones given;
 * - no host (`mqtt:host:1883`, `mqtt://:1883`);
 * - an empty port (`mqtt://host:`): WHATWG URL parsing reads it as "no port", so the client
 *   would silently connect to the scheme's default (1883) — a typo must not reach some other broker;
 * - a port that is not an integer 1–65535 (`mqtt://host:18 83`, `:0`, `:70000`).
 *
 * A URL without a port (`mqtt://host`) is fine: the scheme's default port is meant.
 */

/** Schemes an MQTT client can connect with. */
export const BROKER_SCHEMES: readonly string[] = ["mqtt", "mqtts", "ws", "wss"];
export const HTTP_SCHEMES: readonly string[] = ["http", "https"];

/**
 * Why `raw` is not a usable URL of a service reached with one of `schemes` (a phrase that reads
 * after the option or key: "has an empty port ..."), or undefined when it is usable.
 */
export function endpointUrlProblem(raw: string, schemes: readonly string[]): string | undefined {
  const list = schemes.map((s) => `${s}://`).join(", ");
  const example = `${schemes[0] ?? "mqtt"}://host:port`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s.exec(raw.trim());
  if (!scheme) return `is not a URL (expected ${example})`;
  const name = (scheme[1] ?? "").toLowerCase();
  if (!schemes.includes(name)) return `uses the unsupported scheme "${name}:" (use ${list})`;
  const rest = scheme[2] ?? "";
  if (!rest.startsWith("//")) return `has no host (expected ${example})`;
  const authority = /^[^/?#]*/.exec(rest.slice(2))?.[0] ?? "";
  const hostPort = authority.slice(authority.lastIndexOf("@") + 1);
  let host: string;
  let port: string | undefined;
  if (hostPort.startsWith("[")) {
    const close = hostPort.indexOf("]");
    if (close < 0) return "has an unterminated IPv6 address (missing ])";
    host = hostPort.slice(0, close + 1);
    const after = hostPort.slice(close + 1);
    if (after !== "" && !after.startsWith(":")) return `has text after the IPv6 address: "${after}"`;
    port = after === "" ? undefined : after.slice(1);
  } else {
    const colon = hostPort.lastIndexOf(":");
    host = colon < 0 ? hostPort : hostPort.slice(0, colon);
    port = colon < 0 ? undefined : hostPort.slice(colon + 1);
  }
  if (host === "") return `has no host (expected ${example})`;
  if (port === "")
    return "has an empty port (nothing after the colon): give the port, or leave out the colon for the scheme's default";
  if (port !== undefined && (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65_535))
    return `has an invalid port "${port}" (must be an integer 1-65535)`;
  if (!URL.canParse(raw)) return `is not a valid URL (expected ${example})`;
  return undefined;
}

/** `endpointUrlProblem` for an MQTT broker. */
export function brokerUrlProblem(raw: string): string | undefined {
  return endpointUrlProblem(raw, BROKER_SCHEMES);
}

/** `raw` with the password of its user info masked, for error messages. */
export function maskUrlPassword(raw: string): string {
  return raw.replace(/^([^:/?#]+:\/\/[^/?#@:]*:)[^/?#@]*@/, "$1***@");
}
