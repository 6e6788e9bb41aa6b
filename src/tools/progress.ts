/**
 * A progress bar on stderr for long commands (replay, batch). On a terminal it redraws one
 * line; elsewhere (logs, CI) it prints a line at each tenth so output stays readable.
 */

export class ProgressBar {
  private lastTenth = -1;
  private lastDrawMs = 0;
  /** The clock starts at the first update (a command calls update(0, total) when work begins). */
  private startedMs: number | undefined;

  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {}

  update(done: number, total: number): void {
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    this.startedMs ??= Date.now();
    const elapsedS = (Date.now() - this.startedMs) / 1000;
    const rate = elapsedS > 0 ? Math.round(done / elapsedS) : 0;
    if (this.stream.isTTY) {
      const now = Date.now();
      if (now - this.lastDrawMs < 100 && done < total) return;
      this.lastDrawMs = now;
      const width = 30;
      const filled = Math.round(fraction * width);
      this.stream.write(
        `\r${this.label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${done}/${total} ${rate}/s`,
      );
      if (done >= total) this.stream.write("\n");
      return;
    }
    const tenth = Math.floor(fraction * 10);
    if (tenth > this.lastTenth) {
      this.lastTenth = tenth;
      this.stream.write(`${this.label}: ${(fraction * 100).toFixed(0)}% (${done}/${total}, ${rate}/s)\n`);
    }
  }
}
