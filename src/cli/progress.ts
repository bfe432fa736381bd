import { SingleBar } from 'cli-progress';

/** A progress bar on stderr; silent when stderr is not a terminal unless forced. */
export function progressBar(format: string): SingleBar {
  return new SingleBar({
    format,
    stream: process.stderr,
    noTTYOutput: process.env.ADVSIEVE_PROGRESS === '1',
    notTTYSchedule: 10_000,
    hideCursor: true,
    etaBuffer: 200,
  });
}
