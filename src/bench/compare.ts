/**
 * `npm run bench:compare`: what `compare` says of real attacks on the bundled model. Starts the
 * service on loopback, attacks every fixture image with FGSM and with PGD (the `attack` mutation,
 * ε = BENCH_EPSILON, default 0.1), compares each successful pair over the public API and prints, per
 * attack: the promotion–suppression types on the logits and per layer, how often the logits layer's
 * type differs from the logits', the mean similarity of the perturbation's spectrum to its target
 * class's mean and how often that class ranks first, and the median seconds a `compare` took.
 * The last line is one JSON object.
 */
import * as http from 'http';
import { fixtureBytes, startService, stopService } from './load';
import { printTable } from './measure';

const EPSILON = Number(process.env.BENCH_EPSILON ?? 0.1);

type Typing = { type: string; layers: Array<{ layer: string; type: string }> };
interface Compared {
  classSpectrum: { available: boolean; similarity: number | null; rank: number | null };
  promotionSuppression: Typing | null;
}

function post(
  port: number,
  query: string,
  variables: Record<string, unknown>,
): Promise<{ data?: unknown; errors?: unknown }> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path: '/graphql', method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data?: unknown }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const ATTACK = `mutation ($i: ImageInput!, $m: AttackMethod!, $e: Float!) {
  attack(image: $i, method: $m, epsilon: $e) { adversarialImage success } }`;
const COMPARE = `query ($c: ImageInput!, $s: ImageInput!) { compare(clean: $c, suspect: $s) {
  classSpectrum { available similarity rank }
  promotionSuppression { type layers { layer type } } } }`;

const tally = (types: string[]) =>
  Object.entries(types.reduce<Record<string, number>>((o, t) => ({ ...o, [t]: (o[t] ?? 0) + 1 }), {}))
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');

async function main(): Promise<void> {
  const service = await startService({ ADVSIEVE_WORKERS: '1' });
  const figures: Record<string, unknown> = {};
  try {
    for (const method of ['FGSM', 'PGD']) {
      const pairs: Array<Compared & { seconds: number }> = [];
      for (const bytes of fixtureBytes()) {
        const clean = { base64: bytes.toString('base64') };
        const made = (await post(service.port, ATTACK, { i: clean, m: method, e: EPSILON })) as {
          data?: { attack: { adversarialImage: string; success: boolean } };
        };
        if (!made.data?.attack.success) continue;
        const t0 = process.hrtime.bigint();
        const r = (await post(service.port, COMPARE, {
          c: clean,
          s: { base64: made.data.attack.adversarialImage },
        })) as {
          data?: { compare: Compared };
          errors?: unknown;
        };
        if (!r.data) throw new Error(`compare failed: ${JSON.stringify(r.errors)}`);
        pairs.push({ ...r.data.compare, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
      }
      const typed = pairs.filter((p) => p.promotionSuppression !== null);
      const layers = typed[0]?.promotionSuppression!.layers.map((l) => l.layer) ?? [];
      const layerTypes = (layer: string) =>
        typed.map((p) => p.promotionSuppression!.layers.find((l) => l.layer === layer)!.type);
      const spectra = typed.filter((p) => p.classSpectrum.available);
      const seconds = pairs.map((p) => p.seconds).sort((a, b) => a - b);
      const row = {
        pairs: typed.length,
        logits: tally(typed.map((p) => p.promotionSuppression!.type)),
        layers: Object.fromEntries(layers.map((l) => [l, tally(layerTypes(l))])),
        logitsLayerDiffers: typed.filter(
          (p) =>
            p.promotionSuppression!.layers.find((l) => l.layer === 'logits')?.type !== p.promotionSuppression!.type,
        ).length,
        meanSimilarity: spectra.reduce((a, p) => a + p.classSpectrum.similarity!, 0) / Math.max(spectra.length, 1),
        targetRankedFirst: spectra.filter((p) => p.classSpectrum.rank === 1).length,
        meanRank: spectra.reduce((a, p) => a + p.classSpectrum.rank!, 0) / Math.max(spectra.length, 1),
        medianSeconds: seconds[Math.floor(seconds.length / 2)] ?? NaN,
      };
      figures[method] = row;
      printTable(`${method} ε=${EPSILON}: ${row.pairs} pairs whose prediction changed`, [
        ['logits', row.logits],
        ...layers.map((l) => [`layer ${l}`, row.layers[l]] as [string, string]),
        ['logits layer ≠ logits', String(row.logitsLayerDiffers)],
        [
          'spectrum similarity',
          `mean ${row.meanSimilarity.toFixed(3)}, target first ${row.targetRankedFirst}, mean rank ${row.meanRank.toFixed(2)}`,
        ],
        ['compare median', `${row.medianSeconds.toFixed(3)} s`],
      ]);
    }
  } finally {
    await stopService(service);
  }
  process.stdout.write(JSON.stringify({ epsilon: EPSILON, ...figures }) + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench:compare: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
