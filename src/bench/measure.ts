/** Measurement helpers shared by the benchmark scripts. */

/** Runs `step` (which processes `perStep` items) for `seconds` after one warm-up call; items/s. */
export async function rate(perStep: number, step: () => void | Promise<void>, seconds: number): Promise<number> {
  await step();
  const start = performance.now();
  let n = 0;
  while (performance.now() - start < seconds * 1000) {
    await step();
    n += perStep;
  }
  return n / ((performance.now() - start) / 1000);
}

/** Uniform values in [0, 1): random images for throughput measurements. */
export function randomImages(count: number, size: number): Float32Array {
  const x = new Float32Array(count * size);
  for (let i = 0; i < x.length; i++) x[i] = Math.random();
  return x;
}

/** Prints rows as an aligned two-column table. */
export function printTable(title: string, rows: ReadonlyArray<readonly [string, string]>): void {
  const width = Math.max(...rows.map((r) => r[0].length));
  process.stdout.write(`${title}\n`);
  for (const [k, v] of rows) process.stdout.write(`${k.padEnd(width)}  ${v}\n`);
}
