import { SingleBar } from 'cli-progress';

/** How often a bar writes a line when stderr is not a terminal (a log, CI, a pipe). */
export const PROGRESS_LINE_MS = 30_000;

/**
 * A progress bar on stderr: redrawn in place on a terminal; elsewhere one line every
 * PROGRESS_LINE_MS and one when it stops, so a long run in a log shows that it moves without
 * filling the log with redraws. ADVSIEVE_PROGRESS=0 silences it off a terminal.
 */
export function progressBar(format: string): SingleBar {
  return new SingleBar({
    format,
    stream: process.stderr,
    noTTYOutput: process.env.ADVSIEVE_PROGRESS !== '0',
    notTTYSchedule: PROGRESS_LINE_MS,
    hideCursor: true,
    etaBuffer: 200,
  });
}

/** What a command with long stages passes to them (calibrate, evaluate): a line per stage, a bar for its progress. */
export interface StageProgress {
  /** Ends the current stage's bar and writes `<command>: <stage> [<seconds since the start> s]`. */
  readonly onStage: (stage: string) => void;
  /** The current stage's progress; its first call starts the stage's bar. */
  readonly onProgress: (done: number, total: number) => void;
  /** Ends the last bar. */
  readonly stop: () => void;
}

export function stageProgress(command: string, started = Date.now()): StageProgress {
  let bar: SingleBar | undefined;
  const stop = () => {
    bar?.stop();
    bar = undefined;
  };
  return {
    onStage: (stage) => {
      stop();
      process.stderr.write(`${command}: ${stage} [${((Date.now() - started) / 1000).toFixed(0)} s]\n`);
    },
    onProgress: (done, total) => {
      if (!bar) {
        bar = progressBar('  [{bar}] {value}/{total} {eta_formatted}');
        bar.start(total, 0);
      }
      bar.setTotal(total);
      bar.update(done);
    },
    stop,
  };
}
