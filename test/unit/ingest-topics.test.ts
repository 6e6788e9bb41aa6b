import { describe, expect, it } from "vitest";

import { VigilError } from "../../src/errors.js";
import {
  compileTemplate,
  isValidName,
  TopicRouter,
  validateTemplate,
  type Subscription,
} from "../../src/ingest/topics.js";

function templateError(template: string): VigilError {
  try {
    compileTemplate(template);
  } catch (err) {
    if (err instanceof VigilError) return err;
    throw err;
  }
  throw new Error(`expected ${template} to be rejected`);
}

describe("compileTemplate: whole-level placeholders", () => {
  const t = compileTemplate("plant/{asset}/{signal}");

  it("builds the subscription filter", () => {
    expect(t.filter).toBe("plant/+/+");
    expect(t.hasSignal).toBe(true);
    expect(t.template).toBe("plant/{asset}/{signal}");
  });

  it("captures asset and signal", () => {
    expect(t.match("plant/pump-7/vibration")).toEqual({ asset: "pump-7", signal: "vibration" });
  });

  it("does not match other shapes", () => {
    expect(t.match("plant/pump-7")).toBeNull();
    expect(t.match("plant/pump-7/vibration/extra")).toBeNull();
    expect(t.match("factory/pump-7/vibration")).toBeNull();
    expect(t.match("plant//vibration")).toBeNull();
    expect(t.match("")).toBeNull();
  });

  it("without {signal}, returns the asset only", () => {
    const row = compileTemplate("plant/{asset}/row");
    expect(row.filter).toBe("plant/+/row");
    expect(row.hasSignal).toBe(false);
    expect(row.match("plant/engine-1/row")).toEqual({ asset: "engine-1" });
    expect(row.match("plant/engine-1/col")).toBeNull();
  });
});

describe("compileTemplate: partial-level placeholders", () => {
  it("prefix", () => {
    const t = compileTemplate("factory/+/line-{asset}/data");
    expect(t.filter).toBe("factory/+/+/data");
    expect(t.match("factory/hall-a/line-7/data")).toEqual({ asset: "7" });
    expect(t.match("factory/hall-a/belt-7/data")).toBeNull();
    // The placeholder must capture at least one character.
    expect(t.match("factory/hall-a/line-/data")).toBeNull();
  });

  it("suffix and prefix+suffix", () => {
    const t = compileTemplate("p/{asset}.dev/sig-{signal}.raw");
    expect(t.filter).toBe("p/+/+");
    expect(t.match("p/m1.dev/sig-temp.raw")).toEqual({ asset: "m1", signal: "temp" });
    expect(t.match("p/m1.dev/sig-temp.cooked")).toBeNull();
    expect(t.match("p/m1/sig-temp.raw")).toBeNull();
    expect(t.match("p/.dev/sig-temp.raw")).toBeNull();
  });

  it("prefix and suffix may overlap in the text without being reused", () => {
    const t = compileTemplate("a/x{asset}x");
    expect(t.match("a/xx")).toBeNull();
    expect(t.match("a/xxx")).toEqual({ asset: "x" });
  });
});

describe("compileTemplate: wildcards", () => {
  it("literal + matches any single level", () => {
    const t = compileTemplate("site/+/{asset}/{signal}");
    expect(t.filter).toBe("site/+/+/+");
    expect(t.match("site/north/m1/rpm")).toEqual({ asset: "m1", signal: "rpm" });
    expect(t.match("site/m1/rpm")).toBeNull();
  });

  it("# as last level matches the parent and any depth below", () => {
    const t = compileTemplate("plant/{asset}/#");
    expect(t.filter).toBe("plant/+/#");
    expect(t.match("plant/m1")).toEqual({ asset: "m1" });
    expect(t.match("plant/m1/a")).toEqual({ asset: "m1" });
    expect(t.match("plant/m1/a/b/c")).toEqual({ asset: "m1" });
    expect(t.match("other/m1/a")).toBeNull();
  });

  it("wildcard first levels do not match $ topics (MQTT rule)", () => {
    expect(compileTemplate("{asset}/{signal}").match("$SYS/uptime")).toBeNull();
    expect(compileTemplate("+/{asset}").match("$SYS/x")).toBeNull();
    expect(compileTemplate("$share/{asset}").match("$share/m1")).toEqual({ asset: "m1" });
  });

  it("a captured name that is invalid is no match", () => {
    const t = compileTemplate("plant/{asset}/{signal}");
    expect(t.match(`plant/${"a".repeat(129)}/x`)).toBeNull();
    expect(t.match("plant/m\u0001/x")).toBeNull();
    expect(t.match(`plant/${"a".repeat(128)}/x`)).toEqual({ asset: "a".repeat(128), signal: "x" });
  });
});

describe("template validation", () => {
  it.each([
    ["", /template is empty/],
    ["plant/{signal}", /no \{asset\}/],
    ["plant/{asset}/{asset}", /more than one \{asset\}/],
    ["{asset}/{signal}/{signal}", /more than one \{signal\}/],
    ["plant/{device}/{signal}", /unknown placeholder "\{device\}"/],
    ["plant/{Asset}", /unknown placeholder/],
    ["plant/{}/{asset}", /unknown placeholder "\{\}"/],
    ["plant/{asset}-{signal}", /more than one placeholder/],
    ["plant/{asset/x", /unbalanced/],
    ["plant/asset}/{asset}", /unbalanced/],
    ["plant/#/{asset}", /"#" is allowed only as the last level/],
    ["plant/a+/{asset}", /must be a whole level/],
    ["plant/{asset}#", /must be a whole level/],
    ["/plant/{asset}", /level 1 is empty/],
    ["plant/{asset}/", /level 3 is empty/],
    ["plant//{asset}", /level 2 is empty/],
    ["plant/\u0000/{asset}", /NUL/],
  ])("%j is rejected", (template, message) => {
    const err = templateError(template);
    expect(err.code).toBe("TEMPLATE_INVALID");
    expect(err.message).toMatch(message);
  });

  it("reports every problem at once", () => {
    expect(validateTemplate("//{foo}/#/x")).toEqual([
      'level 1 is empty (leading, trailing or doubled "/")',
      'level 2 is empty (leading, trailing or doubled "/")',
      'level 3 "{foo}": unknown placeholder "{foo}" (use {asset} or {signal})',
      '"#" is allowed only as the last level (found at level 4)',
      "template has no {asset} placeholder",
    ]);
    expect(validateTemplate("plant/{asset}/{signal}")).toEqual([]);
  });
});

describe("isValidName", () => {
  it.each([
    ["a", true],
    ["pump-7.bearing_temp", true],
    ["Motor 3 (left)", true],
    ["ü-ß-温度", true],
    ["x".repeat(128), true],
    ["", false],
    ["x".repeat(129), false],
    ["a/b", false],
    ["a+b", false],
    ["a#", false],
    ["a\u0000b", false],
    ["tab\there", false],
    ["new\nline", false],
    ["del\u007f", false],
    ["c1\u0085", false],
    ["__proto__", false],
  ])("%j → %s", (name, ok) => {
    expect(isValidName(name)).toBe(ok);
  });
});

describe("TopicRouter", () => {
  const router = new TopicRouter([
    { topic: "plant/{asset}/row" },
    { topic: "plant/{asset}/{signal}", format: "json", qos: 1 },
    { topic: "raw/{asset}/{signal}", format: "number" },
    { topic: "plant/{asset}/#", qos: 2 },
  ]);

  it("first match wins and carries format, qos and names", () => {
    expect(router.match("plant/e1/row")).toEqual({
      index: 0,
      template: "plant/{asset}/row",
      format: "json",
      qos: 0,
      hasSignal: false,
      asset: "e1",
    });
    expect(router.match("plant/e1/temp")).toEqual({
      index: 1,
      template: "plant/{asset}/{signal}",
      format: "json",
      qos: 1,
      hasSignal: true,
      asset: "e1",
      signal: "temp",
    });
    expect(router.match("raw/m/rpm")).toMatchObject({
      index: 2,
      format: "number",
      asset: "m",
      signal: "rpm",
    });
  });

  it("unknown topics", () => {
    expect(router.match("elsewhere/e1/temp")).toBeNull();
    expect(router.route("elsewhere/e1/temp")).toEqual({
      ok: false,
      reject: { reason: "unknown_topic", count: 1, detail: 'topic "elsewhere/e1/temp"' },
    });
  });

  it("an invalid name in the first fitting template is bad_name, not a fall-through", () => {
    const r = router.route(`plant/${"a".repeat(200)}/temp`);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reject.reason).toBe("bad_name");
    expect(r.reject.count).toBe(1);
    expect(r.reject.detail?.length).toBeLessThanOrEqual(80);
  });

  it("lists distinct filters, keeping the highest qos", () => {
    expect(router.filters()).toEqual([
      { filter: "plant/+/row", qos: 0 },
      { filter: "plant/+/+", qos: 1 },
      { filter: "raw/+/+", qos: 0 },
      { filter: "plant/+/#", qos: 2 },
    ]);
    const shared = new TopicRouter([
      { topic: "plant/{asset}/{signal}", qos: 0 },
      { topic: "plant/{signal}/{asset}", qos: 2 },
      { topic: "plant/+/{asset}", qos: 1 },
    ]);
    expect(shared.filters()).toEqual([{ filter: "plant/+/+", qos: 2 }]);
    // Same filter, first template wins the topic.
    expect(shared.match("plant/a/b")).toMatchObject({ index: 0, asset: "a", signal: "b" });
  });

  it("falls through to later templates when earlier ones do not fit", () => {
    expect(router.match("plant/e1/a/b")).toMatchObject({ index: 3, asset: "e1", hasSignal: false });
  });

  it("rejects invalid templates naming each subscription", () => {
    expect(
      () => new TopicRouter([{ topic: "ok/{asset}" }, { topic: "bad/{x}" }, { topic: "#/{asset}" }]),
    ).toThrow(/subscriptions\[1\]\.topic "bad\/\{x\}".*subscriptions\[2\]\.topic/);
  });

  it("rejects unknown formats and qos values", () => {
    const subs = [
      { topic: "a/{asset}", format: "csv" },
      { topic: "b/{asset}", qos: 3 },
    ] as unknown as Subscription[];
    expect(() => new TopicRouter(subs)).toThrow(
      /subscriptions\[0\]\.format "csv": expected "json" or "number" \| subscriptions\[1\]\.qos 3: expected 0, 1 or 2/,
    );
  });

  it("an empty router matches nothing", () => {
    const empty = new TopicRouter([]);
    expect(empty.filters()).toEqual([]);
    expect(empty.route("a/b").ok).toBe(false);
  });
});
