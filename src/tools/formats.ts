/**
 * Readers of recorded data for `vigil replay` and `vigil batch`. Pure: text in, rows out.
 *
 * Contract: both readers return rows `{asset, tsMs, values}` in file order and never throw on
 * a bad line; they count it in `skipped` with the first few reasons.
 * - `cmapss`: NASA C-MAPSS text (space-separated: unit, cycle, op1..op3, s1..s21). Asset
 *   `engine-<unit>`, `tsMs = startMs + cycle × 1000`; values `cycle` (the engine's age in
 *   operating cycles, an input of turbofan-rul 2.x), op1..op3 and s1..s21.
 * - `csv`: a header line, then one row per line; `,` or `;` separated (whichever the header
 *   uses more), optional double quotes. An `asset` column names the asset (else `defaultAsset`);
 *   a `ts`, `timestamp`, `time` or `datetime` column gives the time (epoch ms, or ISO-8601;
 *   `YYYY-MM-DD hh:mm:ss` without a zone is taken as UTC), else `startMs + index × 1000`.
 *   Every other column is a signal; a cell that is empty or not a number is left out of that row.
 */

export interface DataRow {
  asset: string;
  tsMs: number;
  values: Record<string, number>;
}

export interface ParseResult {
  rows: DataRow[];
  skipped: number;
  problems: string[];
}

export const CMAPSS_COLUMNS = [
  "unit",
  "cycle",
  "op1",
  "op2",
  "op3",
  ...Array.from({ length: 21 }, (_, i) => `s${i + 1}`),
] as const;

const MAX_PROBLEMS = 5;

function note(result: ParseResult, problem: string): void {
  result.skipped++;
  if (result.problems.length < MAX_PROBLEMS) result.problems.push(problem);
}

export function parseCmapss(text: string, startMs: number): ParseResult {
  const result: ParseResult = { rows: [], skipped: 0, problems: [] };
  const lines = text.split(/\r?\n/);
  lines.forEach((line, i) => {
    const trimmed = line.trim();
    if (trimmed === "") return;
    const cells = trimmed.split(/\s+/).map(Number);
    if (cells.length < CMAPSS_COLUMNS.length || cells.some((v) => !Number.isFinite(v))) {
      note(result, `line ${i + 1}: expected ${CMAPSS_COLUMNS.length} numbers`);
      return;
    }
    const unit = cells[0] as number;
    const cycle = cells[1] as number;
    const values: Record<string, number> = {};
    for (let c = 1; c < CMAPSS_COLUMNS.length; c++) values[CMAPSS_COLUMNS[c] as string] = cells[c] as number;
    result.rows.push({ asset: `engine-${unit}`, tsMs: startMs + cycle * 1000, values });
  });
  return result;
}

function splitCsvLine(line: string, sep: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        cur += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === sep) {
      out.push(cur);
      cur = "";
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out.map((c) => c.trim());
}

const TIME_COLUMNS = ["ts", "timestamp", "time", "datetime"];

export function parseTimeCell(cell: string): number | undefined {
  if (/^-?\d+(\.\d+)?$/.test(cell)) return Math.trunc(Number(cell));
  const naive = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}(:\d{2}(\.\d+)?)?)$/.exec(cell);
  const iso = naive ? `${naive[1]}T${naive[2]}Z` : cell;
  const ms = Date.parse(iso);
  return Number.isFinite(ms) ? ms : undefined;
}

export function parseCsv(text: string, defaultAsset: string, startMs: number): ParseResult {
  const result: ParseResult = { rows: [], skipped: 0, problems: [] };
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const header = lines[0] ?? "";
  const sep = (header.match(/;/g)?.length ?? 0) > (header.match(/,/g)?.length ?? 0) ? ";" : ",";
  const columns = splitCsvLine(header, sep);
  const assetCol = columns.findIndex((c) => c.toLowerCase() === "asset");
  const timeCol = columns.findIndex((c) => TIME_COLUMNS.includes(c.toLowerCase()));
  let index = 0;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line.trim() === "") continue;
    const cells = splitCsvLine(line, sep);
    const asset = assetCol >= 0 ? (cells[assetCol] ?? "") : defaultAsset;
    if (asset === "") {
      note(result, `line ${i + 1}: empty asset`);
      continue;
    }
    let tsMs = startMs + index * 1000;
    if (timeCol >= 0) {
      const t = parseTimeCell(cells[timeCol] ?? "");
      if (t === undefined) {
        note(result, `line ${i + 1}: bad time "${cells[timeCol] ?? ""}"`);
        continue;
      }
      tsMs = t;
    }
    const values: Record<string, number> = {};
    columns.forEach((name, c) => {
      if (c === assetCol || c === timeCol || name === "") return;
      const cell = cells[c];
      if (cell === undefined || cell === "") return;
      const v = Number(cell);
      if (Number.isFinite(v)) values[name] = v;
    });
    if (Object.keys(values).length === 0) {
      note(result, `line ${i + 1}: no numeric values`);
      continue;
    }
    result.rows.push({ asset, tsMs, values });
    index++;
  }
  return result;
}
