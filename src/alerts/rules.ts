/**
 * Alert rules with hysteresis (contract §4 `alerts`), as pure functions of (rule, state, value, time).
 *
 * Contract
 * - State per (asset, model, rule) is a plain JSON-serialisable `RuleState`; the caller owns it and
 *   persists it (SQLite) so that a raised alert stays raised across a restart. Inputs are never mutated;
 *   every call returns a fresh state. No timers, no I/O, no clock: time is the `tsMs` argument and is
 *   only copied into events and `raisedAtMs`.
 * - Raise: while not raised, each window whose value satisfies `value op rule.value` adds 1 to
 *   `consecutive`, any other window resets it to 0; when it reaches `rule.forWindows` (values below 1
 *   act as 1) the rule raises (event `raised`) and the count goes back to 0.
 * - Clear: while raised, the first window whose value is strictly beyond `rule.clearValue` on the other
 *   side clears (event `cleared`): strictly below it for `>`/`>=`, strictly above it for `<`/`<=`.
 *   A value equal to `clearValue` keeps the alert raised. `consecutive` stays 0 while raised, and
 *   counting starts again from 0 after a clear (the clearing window itself never counts).
 * - A non-finite value (NaN, ±Infinity: a broken model output, not a measurement) neither raises nor
 *   clears; it resets `consecutive` to 0 and leaves `raised` as it was.
 * - `evaluateRules` evaluates many rules against one prediction's outputs. An output that is missing
 *   or not a number (a class label, an array) is ignored: that rule's state is carried over unchanged.
 *   The returned states hold exactly the given rules, in rule order; states of other ids are dropped.
 */

import type { AlertOp, AlertRuleSpec } from "../models/manifest-types.js";

export interface RuleState {
  raised: boolean;
  /** Consecutive windows satisfying the raise condition so far, while not raised; 0 while raised. */
  consecutive: number;
  /** Event time of the window that raised the alert; present only while raised. */
  raisedAtMs?: number;
}

export interface RuleTransition {
  state: "raised" | "cleared";
  /** The output value of the window that caused the transition. */
  value: number;
  tsMs: number;
}

export interface RuleEvaluation {
  state: RuleState;
  event?: RuleTransition;
}

/** A transition of one rule, with what an alert payload (contract §5) needs from the rule. */
export interface RuleEvent extends RuleTransition {
  rule: string;
  severity: string;
  output: string;
}

export interface RulesEvaluation {
  states: Map<string, RuleState>;
  /** Transitions in rule order; at most one per rule. */
  events: RuleEvent[];
}

export type RuleStates = ReadonlyMap<string, RuleState> | Readonly<Record<string, RuleState>>;

export function initialRuleState(): RuleState {
  return { raised: false, consecutive: 0 };
}

/**
 * A `RuleState` from persisted JSON, or the initial state when it is not one (a corrupt or
 * foreign row must not crash the pipeline; forgetting a count is the safe failure).
 */
export function parseRuleState(json: unknown): RuleState {
  if (typeof json !== "object" || json === null) return initialRuleState();
  const o = json as Record<string, unknown>;
  if (typeof o.raised !== "boolean") return initialRuleState();
  const consecutive =
    typeof o.consecutive === "number" && Number.isSafeInteger(o.consecutive) && o.consecutive >= 0
      ? o.consecutive
      : 0;
  const state: RuleState = { raised: o.raised, consecutive: o.raised ? 0 : consecutive };
  if (o.raised && typeof o.raisedAtMs === "number" && Number.isFinite(o.raisedAtMs)) {
    state.raisedAtMs = o.raisedAtMs;
  }
  return state;
}

/** Whether `value op threshold` holds. */
export function compare(op: AlertOp, value: number, threshold: number): boolean {
  switch (op) {
    case ">":
      return value > threshold;
    case ">=":
      return value >= threshold;
    case "<":
      return value < threshold;
    case "<=":
      return value <= threshold;
  }
}

/** Whether a raised rule clears at `value`: strictly past `clearValue`, away from the raise side. */
function clears(op: AlertOp, value: number, clearValue: number): boolean {
  return op === ">" || op === ">=" ? value < clearValue : value > clearValue;
}

/** One window of one rule. `state` undefined means never evaluated before. */
export function evaluateRule(
  rule: AlertRuleSpec,
  state: RuleState | undefined,
  value: number,
  tsMs: number,
): RuleEvaluation {
  const prev = state ?? initialRuleState();

  if (!Number.isFinite(value)) {
    return { state: copyWith(prev, 0) };
  }

  if (prev.raised) {
    if (clears(rule.op, value, rule.clearValue)) {
      return {
        state: { raised: false, consecutive: 0 },
        event: { state: "cleared", value, tsMs },
      };
    }
    return { state: copyWith(prev, 0) };
  }

  if (!compare(rule.op, value, rule.value)) {
    return { state: { raised: false, consecutive: 0 } };
  }
  const consecutive = prev.consecutive + 1;
  if (consecutive >= Math.max(1, rule.forWindows)) {
    return {
      state: { raised: true, consecutive: 0, raisedAtMs: tsMs },
      event: { state: "raised", value, tsMs },
    };
  }
  return { state: { raised: false, consecutive } };
}

/** Every rule against one prediction's outputs (by output name). */
export function evaluateRules(
  rules: readonly AlertRuleSpec[],
  states: RuleStates,
  outputs: Readonly<Record<string, number | string | number[]>>,
  tsMs: number,
): RulesEvaluation {
  const next = new Map<string, RuleState>();
  const events: RuleEvent[] = [];
  for (const rule of rules) {
    const prev = lookup(states, rule.id);
    const value = Object.hasOwn(outputs, rule.output) ? outputs[rule.output] : undefined;
    if (typeof value !== "number") {
      next.set(rule.id, prev === undefined ? initialRuleState() : copyWith(prev, prev.consecutive));
      continue;
    }
    const result = evaluateRule(rule, prev, value, tsMs);
    next.set(rule.id, result.state);
    if (result.event !== undefined) {
      events.push({ ...result.event, rule: rule.id, severity: rule.severity, output: rule.output });
    }
  }
  return { states: next, events };
}

function lookup(states: RuleStates, id: string): RuleState | undefined {
  if (states instanceof Map) return states.get(id);
  const record = states as Readonly<Record<string, RuleState>>;
  return Object.hasOwn(record, id) ? record[id] : undefined;
}

function copyWith(state: RuleState, consecutive: number): RuleState {
  const out: RuleState = { raised: state.raised, consecutive };
  if (state.raised && state.raisedAtMs !== undefined) out.raisedAtMs = state.raisedAtMs;
  return out;
}
