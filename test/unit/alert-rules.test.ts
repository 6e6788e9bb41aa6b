import { describe, expect, it } from "vitest";

import {
  compare,
  evaluateRule,
  evaluateRules,
  initialRuleState,
  parseRuleState,
} from "../../src/alerts/rules.js";
import type { RuleState, RuleTransition } from "../../src/alerts/rules.js";
import type { AlertOp, AlertRuleSpec } from "../../src/models/manifest-types.js";

function rule(op: AlertOp, value: number, extra: Partial<AlertRuleSpec> = {}): AlertRuleSpec {
  return {
    id: "r1",
    severity: "warning",
    output: "rul",
    op,
    value,
    forWindows: 1,
    clearValue: value,
    ...extra,
  };
}

/** Feeds `values` one window each (ts = 1000 × index) and returns every event plus the final state. */
function run(
  r: AlertRuleSpec,
  values: number[],
  start: RuleState = initialRuleState(),
): { events: RuleTransition[]; state: RuleState; states: RuleState[] } {
  let state = start;
  const events: RuleTransition[] = [];
  const states: RuleState[] = [];
  values.forEach((value, i) => {
    const out = evaluateRule(r, state, value, i * 1000);
    state = out.state;
    states.push(state);
    if (out.event !== undefined) events.push(out.event);
  });
  return { events, state, states };
}

describe("evaluateRule: raising", () => {
  it("forWindows 1 raises on the first window that satisfies the condition", () => {
    const out = evaluateRule(rule("<", 30), initialRuleState(), 25, 5000);
    expect(out).toEqual({
      state: { raised: true, consecutive: 0, raisedAtMs: 5000 },
      event: { state: "raised", value: 25, tsMs: 5000 },
    });
  });

  it("a window that does not satisfy the condition emits nothing", () => {
    expect(evaluateRule(rule("<", 30), undefined, 31, 0)).toEqual({
      state: { raised: false, consecutive: 0 },
    });
  });

  it("forWindows 3 raises on the third consecutive window, once", () => {
    const { events, states } = run(rule(">", 80, { forWindows: 3 }), [81, 82, 83, 84, 85]);
    expect(states.map((s) => s.consecutive)).toEqual([1, 2, 0, 0, 0]);
    expect(states.map((s) => s.raised)).toEqual([false, false, true, true, true]);
    expect(events).toEqual([{ state: "raised", value: 83, tsMs: 2000 }]);
    expect(states[4]).toEqual({ raised: true, consecutive: 0, raisedAtMs: 2000 });
  });

  it("an interrupted run resets the count", () => {
    const { events, states } = run(rule(">", 80, { forWindows: 3 }), [81, 82, 79, 81, 82, 90]);
    expect(states.map((s) => s.consecutive)).toEqual([1, 2, 0, 1, 2, 0]);
    expect(events).toEqual([{ state: "raised", value: 90, tsMs: 5000 }]);
  });

  it("never raises when runs are always one short", () => {
    const { events } = run(rule(">", 80, { forWindows: 3 }), [81, 81, 0, 81, 81, 0, 81, 81, 0]);
    expect(events).toEqual([]);
  });

  it("treats forWindows below 1 as 1", () => {
    expect(evaluateRule(rule(">", 1, { forWindows: 0 }), undefined, 2, 7).event).toEqual({
      state: "raised",
      value: 2,
      tsMs: 7,
    });
  });

  it("continues a count from a persisted state (restart)", () => {
    const persisted = JSON.parse(JSON.stringify({ raised: false, consecutive: 2 })) as RuleState;
    const out = evaluateRule(rule(">", 80, { forWindows: 3 }), persisted, 81, 9000);
    expect(out.event).toEqual({ state: "raised", value: 81, tsMs: 9000 });
  });

  it("does not mutate the given state", () => {
    const state: RuleState = { raised: false, consecutive: 1 };
    evaluateRule(rule(">", 80, { forWindows: 3 }), state, 81, 0);
    expect(state).toEqual({ raised: false, consecutive: 1 });
  });
});

describe("evaluateRule: clearing", () => {
  it("with the default clearValue (= value), clears at the first window strictly on the other side", () => {
    const { events, states } = run(rule(">", 80), [85, 81, 80, 79.9, 80]);
    expect(events).toEqual([
      { state: "raised", value: 85, tsMs: 0 },
      { state: "cleared", value: 79.9, tsMs: 3000 },
    ]);
    expect(states[3]).toEqual({ raised: false, consecutive: 0 });
  });

  it("with a separate clearValue, oscillation around the threshold raises once and does not flap", () => {
    // Raise above 80, clear only below 70: a signal wobbling around 80 must give one alert, not many.
    const r = rule(">", 80, { clearValue: 70 });
    const values = [79, 81, 79, 81, 79.5, 80.5, 75, 70, 81, 69.9, 79, 81];
    const { events, states } = run(r, values);
    expect(events).toEqual([
      { state: "raised", value: 81, tsMs: 1000 },
      { state: "cleared", value: 69.9, tsMs: 9000 },
      { state: "raised", value: 81, tsMs: 11000 },
    ]);
    expect(states.map((s) => s.raised)).toEqual([
      false,
      true,
      true,
      true,
      true,
      true,
      true,
      true, // exactly clearValue: still raised
      true,
      false,
      false,
      true,
    ]);
  });

  it("the same without hysteresis flaps on every crossing (contrast)", () => {
    const { events } = run(rule(">", 80), [79, 81, 79, 81, 79.5, 80.5]);
    expect(events.map((e) => e.state)).toEqual(["raised", "cleared", "raised", "cleared", "raised"]);
  });

  it("after a clear the count starts again from 0", () => {
    const r = rule("<", 30, { forWindows: 2, clearValue: 40 });
    const { events, states } = run(r, [29, 28, 41, 29, 35, 29, 28]);
    expect(states.map((s) => [s.raised, s.consecutive])).toEqual([
      [false, 1],
      [true, 0],
      [false, 0],
      [false, 1],
      [false, 0],
      [false, 1],
      [true, 0],
    ]);
    expect(events).toEqual([
      { state: "raised", value: 28, tsMs: 1000 },
      { state: "cleared", value: 41, tsMs: 2000 },
      { state: "raised", value: 28, tsMs: 6000 },
    ]);
  });

  it("keeps raisedAtMs while raised and drops it on clear", () => {
    const { states } = run(rule(">", 10), [11, 12, 13, 5]);
    expect(states.map((s) => s.raisedAtMs)).toEqual([0, 0, 0, undefined]);
    expect("raisedAtMs" in (states[3] as RuleState)).toBe(false);
  });
});

describe("evaluateRule: all four ops and equality edges", () => {
  it.each([
    // op, threshold, value at exactly threshold raises?, a value that raises, a value that does not
    [">", 10, false, 10.5, 9],
    [">=", 10, true, 10.5, 9],
    ["<", 10, false, 9.5, 11],
    ["<=", 10, true, 9.5, 11],
  ] as const)("%s %d", (op, threshold, atThreshold, raises, doesNot) => {
    const r = rule(op, threshold);
    expect(evaluateRule(r, undefined, threshold, 0).state.raised).toBe(atThreshold);
    expect(evaluateRule(r, undefined, raises, 0).state.raised).toBe(true);
    expect(evaluateRule(r, undefined, doesNot, 0).state.raised).toBe(false);
    expect(compare(op, threshold, threshold)).toBe(atThreshold);
  });

  it.each([
    // op, threshold/clearValue, a value past clearValue on the other side
    [">", 10, 9.99],
    [">=", 10, 9.99],
    ["<", 10, 10.01],
    ["<=", 10, 10.01],
  ] as const)("%s: clearing at exactly clearValue does not clear; strictly past it does", (op, v, past) => {
    const r = rule(op, v);
    const raised: RuleState = { raised: true, consecutive: 0, raisedAtMs: 0 };
    const atClear = evaluateRule(r, raised, v, 1000);
    expect(atClear).toEqual({ state: { raised: true, consecutive: 0, raisedAtMs: 0 } });
    const cleared = evaluateRule(r, raised, past, 2000);
    expect(cleared).toEqual({
      state: { raised: false, consecutive: 0 },
      event: { state: "cleared", value: past, tsMs: 2000 },
    });
  });

  it(">= with forWindows 2: two windows exactly at the threshold raise", () => {
    const { events } = run(rule(">=", 0.8, { forWindows: 2 }), [0.8, 0.8]);
    expect(events).toEqual([{ state: "raised", value: 0.8, tsMs: 1000 }]);
  });

  it("<= with a clearValue above: between value and clearValue stays raised", () => {
    const r = rule("<=", 20, { clearValue: 25 });
    const { events } = run(r, [20, 22, 25, 24, 25.5]);
    expect(events).toEqual([
      { state: "raised", value: 20, tsMs: 0 },
      { state: "cleared", value: 25.5, tsMs: 4000 },
    ]);
  });
});

describe("evaluateRule: non-finite values", () => {
  it("NaN resets the count and does not raise", () => {
    const { events, states } = run(rule(">", 80, { forWindows: 2 }), [81, Number.NaN, 81, 81]);
    expect(states.map((s) => s.consecutive)).toEqual([1, 0, 1, 0]);
    expect(events).toEqual([{ state: "raised", value: 81, tsMs: 3000 }]);
  });

  it("NaN does not clear a raised alert", () => {
    const raised: RuleState = { raised: true, consecutive: 0, raisedAtMs: 42 };
    expect(evaluateRule(rule(">", 80), raised, Number.NaN, 1000)).toEqual({
      state: { raised: true, consecutive: 0, raisedAtMs: 42 },
    });
  });

  it("±Infinity is treated like NaN", () => {
    expect(evaluateRule(rule(">", 80), undefined, Number.POSITIVE_INFINITY, 0)).toEqual({
      state: { raised: false, consecutive: 0 },
    });
    const raised: RuleState = { raised: true, consecutive: 0, raisedAtMs: 1 };
    expect(evaluateRule(rule(">", 80), raised, Number.NEGATIVE_INFINITY, 0).event).toBeUndefined();
  });
});

describe("evaluateRules", () => {
  const rules: AlertRuleSpec[] = [
    rule("<", 30, { id: "rul-low", severity: "critical", output: "rul", clearValue: 40 }),
    rule(">", 0.9, { id: "anomaly", severity: "info", output: "score", forWindows: 2 }),
    rule(">", 0.5, { id: "on-label", output: "fault" }),
  ];

  it("evaluates every rule against its output and returns events in rule order", () => {
    const first = evaluateRules(rules, {}, { rul: 25, score: 0.95, fault: "bearing" }, 1000);
    expect(first.events).toEqual([
      { rule: "rul-low", severity: "critical", output: "rul", state: "raised", value: 25, tsMs: 1000 },
    ]);
    expect([...first.states.entries()]).toEqual([
      ["rul-low", { raised: true, consecutive: 0, raisedAtMs: 1000 }],
      ["anomaly", { raised: false, consecutive: 1 }],
      ["on-label", { raised: false, consecutive: 0 }],
    ]);

    const second = evaluateRules(rules, first.states, { rul: 45, score: 0.97, fault: "ok" }, 2000);
    expect(second.events).toEqual([
      { rule: "rul-low", severity: "critical", output: "rul", state: "cleared", value: 45, tsMs: 2000 },
      { rule: "anomaly", severity: "info", output: "score", state: "raised", value: 0.97, tsMs: 2000 },
    ]);
  });

  it("accepts a plain record of states (as persisted) and a Map alike", () => {
    const record: Record<string, RuleState> = { anomaly: { raised: false, consecutive: 1 } };
    const fromRecord = evaluateRules(rules, record, { score: 0.99 }, 5);
    const fromMap = evaluateRules(rules, new Map(Object.entries(record)), { score: 0.99 }, 5);
    expect(fromRecord).toEqual(fromMap);
    expect(fromRecord.events.map((e) => e.rule)).toEqual(["anomaly"]);
  });

  it("ignores outputs that are missing, labels or arrays: state carried over unchanged", () => {
    const states = new Map<string, RuleState>([
      ["rul-low", { raised: true, consecutive: 0, raisedAtMs: 7 }],
      ["anomaly", { raised: false, consecutive: 1 }],
    ]);
    const out = evaluateRules(rules, states, { rul: "n/a", score: [0.99, 0.98] }, 9);
    expect(out.events).toEqual([]);
    expect(out.states.get("rul-low")).toEqual({ raised: true, consecutive: 0, raisedAtMs: 7 });
    expect(out.states.get("anomaly")).toEqual({ raised: false, consecutive: 1 });
    expect(out.states.get("on-label")).toEqual({ raised: false, consecutive: 0 });
  });

  it("a NaN number output resets that rule's count", () => {
    const out = evaluateRules(
      rules,
      { anomaly: { raised: false, consecutive: 1 } },
      { score: Number.NaN },
      0,
    );
    expect(out.states.get("anomaly")).toEqual({ raised: false, consecutive: 0 });
  });

  it("drops states of rules no longer present and does not mutate the inputs", () => {
    const states = { gone: { raised: true, consecutive: 0 }, "rul-low": { raised: false, consecutive: 0 } };
    const snapshot = JSON.stringify(states);
    const out = evaluateRules(rules, states, { rul: 50 }, 0);
    expect([...out.states.keys()]).toEqual(["rul-low", "anomaly", "on-label"]);
    expect(JSON.stringify(states)).toBe(snapshot);
  });

  it("does not read states or outputs from Object.prototype", () => {
    const r = [rule(">", 0, { id: "toString", output: "constructor" })];
    const out = evaluateRules(r, {}, {}, 0);
    expect(out.events).toEqual([]);
    expect(out.states.get("toString")).toEqual({ raised: false, consecutive: 0 });
  });
});

describe("parseRuleState", () => {
  it("round-trips a JSON-serialised state", () => {
    const s: RuleState = { raised: true, consecutive: 0, raisedAtMs: 1_732_230_000_123 };
    expect(parseRuleState(JSON.parse(JSON.stringify(s)))).toEqual(s);
    expect(parseRuleState({ raised: false, consecutive: 2 })).toEqual({ raised: false, consecutive: 2 });
  });

  it.each([null, "x", 3, [], {}, { raised: "yes" }])("falls back to the initial state for %j", (json) => {
    expect(parseRuleState(json)).toEqual({ raised: false, consecutive: 0 });
  });

  it("sanitises a bad count", () => {
    expect(parseRuleState({ raised: false, consecutive: -1 })).toEqual({ raised: false, consecutive: 0 });
    expect(parseRuleState({ raised: false, consecutive: 1.5 })).toEqual({ raised: false, consecutive: 0 });
  });
});
