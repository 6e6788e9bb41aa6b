/**
 * The update status (ModelUpdater.status) as the lines `vigil status` prints under
 * "updates". Pure.
 */

import type { OtaStatus } from "./updater.js";

export function otaStatusLines(ota: OtaStatus | undefined): string[] {
  if (!ota) return [];
  const lines: string[] = [];
  if (ota.busy) {
    const what = ota.busy.name ? ` (${ota.busy.name}${ota.busy.version ? ` ${ota.busy.version}` : ""})` : "";
    lines.push(`deploying ${ota.busy.transaction}${what}: ${ota.busy.stage}`);
  }
  for (const m of ota.models) {
    const t = m.trial as {
      version?: string;
      state?: string;
      windows?: number;
      report?: { agreement?: number | null };
    } | null;
    if (t) {
      const agreement =
        typeof t.report?.agreement === "number"
          ? `, agreement ${(t.report.agreement * 100).toFixed(1)}%`
          : "";
      lines.push(
        `trial ${m.name} ${t.version ?? "?"} beside ${m.active ?? "?"}: ${t.state ?? "?"}, ${t.windows ?? 0} window(s)${agreement}`,
      );
    }
    const p = m.probation as { version?: string; windows?: number; limits?: { windows?: number } } | null;
    if (p)
      lines.push(
        `probation ${m.name} ${p.version ?? "?"}: ${p.windows ?? 0} of ${p.limits?.windows ?? "?"} window(s)`,
      );
  }
  const last = ota.lastUpdate;
  if (last) {
    const subject = last.name ? ` ${last.name}${last.version ? ` ${last.version}` : ""}` : "";
    lines.push(
      `last ${last.action}${last.transaction ? ` ${last.transaction}` : ""}${subject}: ${last.result}${last.error ? ` — ${last.error}` : ""} (${new Date(last.atMs).toISOString()})`,
    );
  }
  if (lines.length === 0) lines.push("none yet");
  return lines;
}
