/**
 * Progress on stderr: a single rewritten line on a TTY, plain lines (at most one every few seconds per task) when
 * stderr is a file or a CI log. The library reports through callbacks; the CLI installs this reporter.
 */
export interface ProgressReporter {
  /** `label`: what is being done; done/total units; `extra`: e.g. tokens/s. */
  update(label: string, done: number, total: number, extra?: string): void;
  /** A line of its own (backend chosen, file written, ...). */
  note(line: string): void;
  done(): void;
}

function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.round((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function createProgress(stream: NodeJS.WriteStream = process.stderr, options: { quiet?: boolean; interval?: number } = {}): ProgressReporter {
  const tty = stream.isTTY === true;
  // Per label: when and at which count it was first seen. The rate (and so the ETA) is measured from there, so
  // the first line of a task never claims an ETA it cannot know.
  const starts = new Map<string, { t: number; done: number }>();
  const lastPrint = new Map<string, number>();
  let open = false;
  const interval = options.interval ?? 5000;
  return {
    update(label, done, total, extra) {
      if (options.quiet) return;
      const now = Date.now();
      if (!starts.has(label)) starts.set(label, { t: now, done });
      const start = starts.get(label)!;
      const elapsed = (now - start.t) / 1000;
      const line = formatLine(label, done, total, elapsed, start.done, extra);
      if (tty) {
        stream.write(`\r\x1b[K${line}`);
        open = true;
        if (total > 0 && done >= total) {
          stream.write('\n');
          open = false;
        }
      } else if ((total > 0 && done >= total) || !lastPrint.has(label) || now - lastPrint.get(label)! >= interval) {
        stream.write(`${line}\n`);
        lastPrint.set(label, now);
      }
    },
    note(line) {
      if (options.quiet) return;
      if (open) stream.write('\n');
      open = false;
      stream.write(`${line}\n`);
    },
    done() {
      if (open) stream.write('\n');
      open = false;
    },
  };
}

/**
 * One progress line. `total <= 0`: the amount of work is unknown, only the elapsed time is shown. The ETA appears
 * once some units were done after the label was first seen (`done0`) and a second has passed.
 */
export function formatLine(label: string, done: number, total: number, elapsed: number, done0: number, extra?: string): string {
  const tail = extra ? ` ${extra}` : '';
  if (total <= 0) return `${label}: elapsed ${fmtSeconds(elapsed)}${tail}`;
  const progressed = done - done0;
  const eta = progressed > 0 && elapsed >= 1 && done < total ? ` eta ${fmtSeconds((elapsed / progressed) * (total - done))}` : '';
  return `${label}: ${done}/${total} (${((100 * done) / total).toFixed(0)}%) elapsed ${fmtSeconds(elapsed)}${eta}${tail}`;
}
