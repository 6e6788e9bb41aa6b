/**
 * Topic templates and routing for sensor readings (pure; no MQTT client here).
 *
 * Contract:
 * - A template is an MQTT topic whose levels are one of:
 *   - a literal (`plant`), matched exactly;
 *   - `+`, matching any single level;
 *   - `#`, only as the last level, matching the parent level and any number of levels below
 *     it (MQTT semantics: `a/#` matches `a`, `a/b`, `a/b/c`);
 *   - a placeholder level: `{asset}` or `{signal}`, optionally with literal text before and/or
 *     after it (`line-{asset}`, `{signal}.raw`); at most one placeholder per level.
 *   Exactly one `{asset}` and at most one `{signal}`. No empty levels (so no leading, trailing
 *   or doubled `/`), no other `{...}`, no stray braces, no `+`/`#` mixed with other text in a
 *   level, no NUL. Problems are reported all at once: `validateTemplate` returns them,
 *   `compileTemplate` throws one `VigilError` with code `TEMPLATE_INVALID` listing them.
 * - `compileTemplate(t).filter` is the subscription filter: every placeholder level becomes `+`.
 * - `match(topic)` returns the names captured by the placeholders, or `null` when the topic
 *   does not fit the template or a captured name fails `isValidName`. As in MQTT, a template
 *   whose first level is a wildcard or placeholder never matches a topic starting with `$`.
 * - `TopicRouter` tries its subscriptions in order; the first template whose structure fits
 *   wins. If that template captured an invalid name, the topic is rejected with `bad_name`
 *   (it does not fall through to later templates: the operator's first choice is the
 *   meaningful one). A topic no template fits is `unknown_topic`.
 */

import { VigilError } from "../errors.js";
import type { Reject } from "../types.js";

export type PayloadFormat = "json" | "number";
export type Qos = 0 | 1 | 2;

export interface TemplateMatch {
  asset: string;
  signal?: string;
}

export interface CompiledTemplate {
  readonly template: string;
  /** MQTT subscription filter: placeholder levels replaced by `+`. */
  readonly filter: string;
  /** Whether the template names the signal (`{signal}`); if not, payloads must name it. */
  readonly hasSignal: boolean;
  /** The names the topic carries, or null when it does not match (or a name is invalid). */
  match(topic: string): TemplateMatch | null;
}

/** Longest asset or signal name, in UTF-16 code units. */
export const MAX_NAME_CHARS = 128;

// C0 controls, DEL and C1 controls (NUL included); `+ # /` are MQTT topic syntax.
// eslint-disable-next-line no-control-regex
const FORBIDDEN_NAME_CHARS = /[\u0000-\u001f\u007f-\u009f+#/]/;

/**
 * A usable asset or signal name: 1..128 characters, no control characters (NUL included),
 * none of `+ # /`, and not `__proto__` (names end up as keys in downstream objects).
 */
export function isValidName(name: string): boolean {
  return (
    name.length >= 1 &&
    name.length <= MAX_NAME_CHARS &&
    !FORBIDDEN_NAME_CHARS.test(name) &&
    name !== "__proto__"
  );
}

type Level =
  | { kind: "literal"; text: string }
  | { kind: "plus" }
  | { kind: "hash" }
  | { kind: "placeholder"; name: "asset" | "signal"; prefix: string; suffix: string };

const PLACEHOLDER = /\{([^{}]*)\}/g;
/** MQTT limits a topic to 65,535 bytes of UTF-8. */
const MAX_TOPIC_BYTES = 65_535;

interface Parsed {
  levels: Level[];
  problems: string[];
}

function parseTemplate(template: string): Parsed {
  const problems: string[] = [];
  const levels: Level[] = [];
  if (template.length === 0) return { levels, problems: ["template is empty"] };
  if (template.includes("\u0000")) problems.push("template contains a NUL character");
  if (Buffer.byteLength(template, "utf8") > MAX_TOPIC_BYTES) {
    problems.push(`template is longer than ${MAX_TOPIC_BYTES} bytes`);
  }
  const parts = template.split("/");
  let assets = 0;
  let signals = 0;
  parts.forEach((part, i) => {
    const where = `level ${i + 1}`;
    if (part === "") {
      problems.push(`${where} is empty (leading, trailing or doubled "/")`);
      return;
    }
    if (part === "+") {
      levels.push({ kind: "plus" });
      return;
    }
    if (part === "#") {
      if (i !== parts.length - 1) problems.push(`"#" is allowed only as the last level (found at ${where})`);
      levels.push({ kind: "hash" });
      return;
    }
    const found = [...part.matchAll(PLACEHOLDER)];
    const outside = part.replace(PLACEHOLDER, "");
    if (outside.includes("{") || outside.includes("}")) {
      problems.push(`${where} "${part}" has an unbalanced "{" or "}"`);
      return;
    }
    if (outside.includes("+") || outside.includes("#")) {
      problems.push(`${where} "${part}": "+" and "#" must be a whole level`);
      return;
    }
    if (found.length === 0) {
      levels.push({ kind: "literal", text: part });
      return;
    }
    let ok = true;
    for (const m of found) {
      const name = m[1];
      if (name === "asset") assets += 1;
      else if (name === "signal") signals += 1;
      else {
        problems.push(`${where} "${part}": unknown placeholder "{${name ?? ""}}" (use {asset} or {signal})`);
        ok = false;
      }
    }
    if (found.length > 1) {
      problems.push(`${where} "${part}" has more than one placeholder`);
      return;
    }
    const m = found[0];
    if (!ok || m === undefined) return;
    const start = m.index;
    levels.push({
      kind: "placeholder",
      name: m[1] === "asset" ? "asset" : "signal",
      prefix: part.slice(0, start),
      suffix: part.slice(start + m[0].length),
    });
  });
  if (assets === 0) problems.push("template has no {asset} placeholder");
  if (assets > 1) problems.push("template has more than one {asset} placeholder");
  if (signals > 1) problems.push("template has more than one {signal} placeholder");
  return { levels, problems };
}

/** Every problem with a template (empty when it is valid). */
export function validateTemplate(template: string): string[] {
  return parseTemplate(template).problems;
}

type Capture =
  | { kind: "nomatch" }
  | { kind: "bad_name"; which: "asset" | "signal"; name: string }
  | { kind: "ok"; match: TemplateMatch };

class Template implements CompiledTemplate {
  readonly filter: string;
  readonly hasSignal: boolean;

  constructor(
    readonly template: string,
    private readonly levels: readonly Level[],
  ) {
    this.filter = levels
      .map((l) => (l.kind === "literal" ? l.text : l.kind === "hash" ? "#" : "+"))
      .join("/");
    this.hasSignal = levels.some((l) => l.kind === "placeholder" && l.name === "signal");
  }

  match(topic: string): TemplateMatch | null {
    const c = this.capture(topic);
    return c.kind === "ok" ? c.match : null;
  }

  /** Structural match, then name validation, kept apart so the router can tell them apart. */
  capture(topic: string): Capture {
    const nomatch: Capture = { kind: "nomatch" };
    const first = this.levels[0];
    if (topic.startsWith("$") && first !== undefined && first.kind !== "literal") return nomatch;
    const parts = topic.split("/");
    let asset: string | undefined;
    let signal: string | undefined;
    for (let i = 0; i < this.levels.length; i++) {
      const level = this.levels[i] as Level;
      const part = parts[i];
      if (level.kind === "hash") {
        // `#` is last; it matches the parent level itself too (parts.length === i).
        break;
      }
      if (part === undefined) return nomatch;
      if (level.kind === "literal") {
        if (part !== level.text) return nomatch;
      } else if (level.kind === "placeholder") {
        const { prefix, suffix } = level;
        if (part.length <= prefix.length + suffix.length) return nomatch;
        if (!part.startsWith(prefix) || !part.endsWith(suffix)) return nomatch;
        const name = part.slice(prefix.length, part.length - suffix.length);
        if (level.name === "asset") asset = name;
        else signal = name;
      }
    }
    const last = this.levels[this.levels.length - 1];
    if (last?.kind !== "hash" && parts.length !== this.levels.length) return nomatch;
    if (asset === undefined) return nomatch;
    if (!isValidName(asset)) return { kind: "bad_name", which: "asset", name: asset };
    if (signal !== undefined && !isValidName(signal))
      return { kind: "bad_name", which: "signal", name: signal };
    return { kind: "ok", match: signal === undefined ? { asset } : { asset, signal } };
  }
}

/** Compiles a template; throws `VigilError` `TEMPLATE_INVALID` listing every problem. */
export function compileTemplate(template: string): CompiledTemplate {
  return compile(template);
}

function compile(template: string): Template {
  const { levels, problems } = parseTemplate(template);
  if (problems.length > 0) {
    throw new VigilError("TEMPLATE_INVALID", `invalid topic template "${template}": ${problems.join("; ")}`);
  }
  return new Template(template, levels);
}

export interface Subscription {
  /** A topic template (see above). */
  topic: string;
  /** Payload format; default `json`. */
  format?: PayloadFormat;
  /** Subscription QoS; default 0. */
  qos?: Qos;
}

export interface RouteMatch {
  /** Index of the subscription in the router's list. */
  index: number;
  /** The subscription's template. */
  template: string;
  format: PayloadFormat;
  qos: Qos;
  /** Whether the template names the signal; if not, payloads must carry `values`. */
  hasSignal: boolean;
  asset: string;
  signal?: string;
}

export type RouteResult = { ok: true; route: RouteMatch } | { ok: false; reject: Reject };

/** Longest text of a topic or name quoted in a reject detail. */
const DETAIL_CHARS = 80;

function clip(s: string, max = DETAIL_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}

/**
 * Routes incoming topics to the first matching subscription. Throws `TEMPLATE_INVALID` at
 * construction if any template (or a `format`/`qos` value) is invalid; the message names
 * each subscription's index and lists every problem of every subscription.
 */
export class TopicRouter {
  private readonly entries: { sub: Required<Subscription>; template: Template }[];

  constructor(subscriptions: readonly Subscription[]) {
    const problems: string[] = [];
    const entries: { sub: Required<Subscription>; template: Template }[] = [];
    subscriptions.forEach((s, i) => {
      const found = validateTemplate(s.topic);
      if (found.length > 0) problems.push(`subscriptions[${i}].topic "${s.topic}": ${found.join("; ")}`);
      if (s.format !== undefined && s.format !== "json" && s.format !== "number") {
        problems.push(`subscriptions[${i}].format "${String(s.format)}": expected "json" or "number"`);
      }
      if (s.qos !== undefined && s.qos !== 0 && s.qos !== 1 && s.qos !== 2) {
        problems.push(`subscriptions[${i}].qos ${String(s.qos)}: expected 0, 1 or 2`);
      }
      if (problems.length > 0) return;
      entries.push({
        sub: { topic: s.topic, format: s.format ?? "json", qos: s.qos ?? 0 },
        template: compile(s.topic),
      });
    });
    if (problems.length > 0) {
      throw new VigilError("TEMPLATE_INVALID", `invalid topic templates: ${problems.join(" | ")}`);
    }
    this.entries = entries;
  }

  /**
   * Distinct MQTT filters to subscribe to, in first-seen order; when two templates share a
   * filter, the higher QoS is kept.
   */
  filters(): { filter: string; qos: Qos }[] {
    const byFilter = new Map<string, Qos>();
    for (const { sub, template } of this.entries) {
      const prev = byFilter.get(template.filter);
      if (prev === undefined || sub.qos > prev) byFilter.set(template.filter, sub.qos);
    }
    return [...byFilter].map(([filter, qos]) => ({ filter, qos }));
  }

  /** First subscription whose template matches, with the names it captured; null if none. */
  match(topic: string): RouteMatch | null {
    const r = this.route(topic);
    return r.ok ? r.route : null;
  }

  /** Like `match`, but says why a topic was refused: `unknown_topic` or `bad_name`. */
  route(topic: string): RouteResult {
    for (let index = 0; index < this.entries.length; index++) {
      const entry = this.entries[index];
      if (entry === undefined) continue;
      const c = entry.template.capture(topic);
      if (c.kind === "nomatch") continue;
      if (c.kind === "bad_name") {
        return {
          ok: false,
          reject: {
            reason: "bad_name",
            count: 1,
            detail: clip(`invalid ${c.which} name in topic "${topic}"`),
          },
        };
      }
      const route: RouteMatch = {
        index,
        template: entry.sub.topic,
        format: entry.sub.format,
        qos: entry.sub.qos,
        hasSignal: entry.template.hasSignal,
        asset: c.match.asset,
      };
      if (c.match.signal !== undefined) route.signal = c.match.signal;
      return { ok: true, route };
    }
    return { ok: false, reject: { reason: "unknown_topic", count: 1, detail: clip(`topic "${topic}"`) } };
  }
}
