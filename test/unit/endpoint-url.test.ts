/**
 * Service URLs (src/system/endpoint-url.ts): an empty or invalid port, a missing host or an
 * unsupported scheme is refused with a reason, the same way wherever a broker URL comes from
 * (`mqtt.url` in the configuration, sync destinations; the CLI's `--broker` and `--url` are in
 * test/integration/cli-urls.test.ts). A URL without a port means the scheme's default and is fine.
 */

import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { ConfigError } from "../../src/errors.js";
import { destinationIssues } from "../../src/sync/config.js";
import {
  HTTP_SCHEMES,
  brokerUrlProblem,
  endpointUrlProblem,
  maskUrlPassword,
} from "../../src/system/endpoint-url.js";

describe("broker URLs", () => {
  it.each([
    "mqtt://127.0.0.1:1883",
    "mqtt://127.0.0.1",
    "mqtts://broker.plant:8883",
    "ws://host:9001/mqtt",
    "wss://user:pa:ss@host/mqtt",
    "mqtt://[::1]:1883",
    "mqtt://[::1]",
    "MQTT://host:1",
    "mqtt://host:65535",
  ])("accepts %s", (url) => {
    expect(brokerUrlProblem(url)).toBeUndefined();
  });

  it.each([
    ["mqtt://127.0.0.1:", /empty port/],
    ["mqtt://127.0.0.1:/", /empty port/],
    ["mqtt://user:secret@host:", /empty port/],
    ["mqtt://[::1]:", /empty port/],
    ["ws://host:/mqtt", /empty port/],
    ["mqtt://host:abc", /invalid port "abc" \(must be an integer 1-65535\)/],
    ["mqtt://host:0", /invalid port "0"/],
    ["mqtt://host:65536", /invalid port "65536"/],
    ["mqtt://host:-1", /invalid port "-1"/],
    ["mqtt://:1883", /no host/],
    ["mqtt:host:1883", /no host/],
    ["mqtt://[::1", /unterminated IPv6/],
    ["mqtt://[::1]x", /after the IPv6 address/],
    ["http://host:1883", /unsupported scheme "http:" \(use mqtt:\/\/, mqtts:\/\/, ws:\/\/, wss:\/\/\)/],
    ["tcp://host:1883", /unsupported scheme "tcp:"/],
    ["127.0.0.1:1883", /unsupported scheme "127.0.0.1:"|not a URL/],
    ["localhost", /not a URL/],
    ["", /not a URL/],
    ["mqtt://ho st:1883", /not a valid URL/],
  ])("refuses %s", (url, reason) => {
    expect(brokerUrlProblem(url)).toMatch(reason);
  });

  it("takes other schemes for other services", () => {
    expect(endpointUrlProblem("http://127.0.0.1:8080", HTTP_SCHEMES)).toBeUndefined();
    expect(endpointUrlProblem("http://127.0.0.1:", HTTP_SCHEMES)).toMatch(/empty port/);
    expect(endpointUrlProblem("mqtt://127.0.0.1:1883", HTTP_SCHEMES)).toMatch(/unsupported scheme "mqtt:"/);
  });

  it("masks a password in a URL shown in an error, nothing else", () => {
    expect(maskUrlPassword("mqtt://user:secret@host:")).toBe("mqtt://user:***@host:");
    expect(maskUrlPassword("mqtt://user@host:")).toBe("mqtt://user@host:");
    expect(maskUrlPassword("mqtt://host:1883/a@b")).toBe("mqtt://host:1883/a@b");
  });

  it("mqtt.url in the configuration is refused the same way, with its key", () => {
    let caught: unknown;
    try {
      loadConfig({ env: {}, overrides: { "mqtt.url": "mqtt://127.0.0.1:" } });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const issue = (caught as ConfigError).issues.find((i) => i.key === "mqtt.url");
    expect(issue?.message).toMatch(/empty port/);
  });

  it("a sync destination's URL is refused the same way", () => {
    expect(
      destinationIssues([
        { type: "mqtt", url: "mqtts://cloud:" },
        { type: "http", url: "https://cloud.example:99999/ingest" },
      ]),
    ).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^\[0\]\.url has an empty port/),
        expect.stringMatching(/^\[1\]\.url has an invalid port "99999"/),
      ]),
    );
  });
});
