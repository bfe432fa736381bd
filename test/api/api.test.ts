/**
 * The GraphQL API against a started server over HTTP: uploads per the multipart spec (and the CSRF
 * rule), base64, one bad image among good ones, every request-level error code, dedup, batches
 * forming across concurrent requests, the other fields, health and metrics.
 */
import * as fs from 'fs';
import sharp from 'sharp';
import { engineStats, errorCode, fixtureFiles, gql, gqlMultipart, startServer, TestServer } from './helpers';

const LIMITS = {
  ADVSIEVE_MAX_FILE_BYTES: '65536',
  ADVSIEVE_MAX_FILES: '8',
  ADVSIEVE_MAX_IMAGES: '16',
  ADVSIEVE_MAX_QUEUE: '12',
  ADVSIEVE_MAX_DELAY_MS: '20',
  ADVSIEVE_MAX_PIXELS: '1000000',
  ADVSIEVE_MAX_BODY_BYTES: '262144',
  ADVSIEVE_ATTACK_MAX_STEPS: '20',
  NODE_ENV: 'development',
};

const SCREEN = `mutation($images: [ImageInput!]!, $options: ScreenOptions) {
  screen(images: $images, options: $options) {
    index sha256
    prediction { label classIndex confidence top { label score } }
    detection { adversarial score threshold targetFpr detectors { name score threshold flagged } }
    defense { radius kind prediction { classIndex } purifiedImage }
    error { code message }
  }
}`;

interface ScreenRow {
  index: number;
  sha256: string | null;
  prediction: {
    label: string;
    classIndex: number;
    confidence: number;
    top: Array<{ label: string; score: number }>;
  } | null;
  detection: {
    adversarial: boolean;
    score: number;
    threshold: number;
    targetFpr: number;
    detectors: Array<{ name: string; score: number; threshold: number; flagged: boolean }>;
  } | null;
  defense: { radius: number; kind: string; prediction: { classIndex: number }; purifiedImage: string | null } | null;
  error: { code: string; message: string } | null;
}

let server: TestServer;
const files = fixtureFiles();
const good = files.map((f) => fs.readFileSync(f));
const trouser = fs.readFileSync(files.find((f) => f.includes('trouser'))!);
const b64 = (b: Buffer) => b.toString('base64');

beforeAll(async () => {
  server = await startServer(LIMITS);
}, 120_000);

afterAll(async () => {
  await server?.stop();
});

describe('health and model', () => {
  test('live and ready answer 200; model describes the bundled model and its calibration', async () => {
    expect((await fetch(`${server.base}/health/live`)).status).toBe(200);
    const ready = await fetch(`${server.base}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', workers: 2, readyWorkers: 2 });
    const r = await gql<{ model: Record<string, unknown>; limits: Record<string, number> }>(
      server,
      `{ model { id sha256 labels inputShape backend gpu layers attacksEnabled batching { maxBatch maxDelayMs maxQueue workers }
          calibration { modelSha256 defaultTargetFpr lowPassRadius detectors { name threshold } } }
         limits { maxFileBytes maxFiles maxImages maxPixels } }`,
    );
    const m = r.body.data!.model as {
      id: string;
      sha256: string;
      labels: string[];
      inputShape: number[];
      backend: string;
      layers: string[];
      batching: Record<string, number>;
      calibration: { modelSha256: string; detectors: Array<{ name: string }> };
    };
    expect(m.id).toBe('fashion-cnn');
    expect(m.labels).toHaveLength(10);
    expect(m.inputShape).toEqual([28, 28, 1]);
    expect(m.backend).toBe('wasm');
    expect(m.layers.length).toBeGreaterThan(0);
    expect(m.batching).toEqual({ maxBatch: 64, maxDelayMs: 20, maxQueue: 12, workers: 2 });
    expect(m.calibration.modelSha256).toBe(m.sha256);
    expect(m.calibration.detectors.map((d) => d.name)).toContain('combined');
    expect(r.body.data!.limits).toEqual({ maxFileBytes: 65536, maxFiles: 8, maxImages: 16, maxPixels: 1000000 });
  });
});

describe('uploads', () => {
  test('multipart per the spec: a good and a corrupt file, each answered in order', async () => {
    const truncated = trouser.subarray(0, 100);
    const r = await gqlMultipart<{ screen: ScreenRow[] }>(server, SCREEN, [trouser, truncated]);
    expect(r.status).toBe(200);
    const [a, b] = r.body.data!.screen;
    expect(a.index).toBe(0);
    expect(a.prediction!.label).toBe('Trouser');
    expect(a.detection!.detectors.length).toBe(5);
    expect(a.detection!.targetFpr).toBeCloseTo(0.05);
    expect(b.index).toBe(1);
    expect(b.prediction).toBeNull();
    expect(b.error!.code).toBe('CORRUPT_IMAGE');
  });

  test('multipart without Apollo-Require-Preflight is refused before anything runs', async () => {
    const before = await engineStats(server);
    const r = await gqlMultipart(server, SCREEN, [trouser], { preflight: false });
    expect(r.status).toBe(400);
    expect(errorCode(r)).toBe('BAD_REQUEST');
    expect(r.body.errors![0].message).toMatch(/CSRF/);
    expect((await engineStats(server)).items).toBe(before.items);
  });

  test('base64 gives the same answer as the upload of the same file', async () => {
    const [viaFile] = (await gqlMultipart<{ screen: ScreenRow[] }>(server, SCREEN, [trouser])).body.data!.screen;
    const [viaB64] = (await gql<{ screen: ScreenRow[] }>(server, SCREEN, { images: [{ base64: b64(trouser) }] })).body
      .data!.screen;
    expect(viaB64.sha256).toBe(viaFile.sha256);
    expect(viaB64.prediction).toEqual(viaFile.prediction);
    expect(viaB64.detection).toEqual(viaFile.detection);
    // data: URLs and the URL-safe alphabet are accepted too.
    const [dataUrl] = (
      await gql<{ screen: ScreenRow[] }>(server, SCREEN, {
        images: [{ base64: `data:image/png;base64,${b64(trouser).replace(/\+/g, '-').replace(/\//g, '_')}` }],
      })
    ).body.data!.screen;
    expect(dataUrl.sha256).toBe(viaFile.sha256);
  });

  test('one bad image never spoils the batch: every kind of bad image gets its own code', async () => {
    const bomb = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#000000' } })
      .png()
      .toBuffer();
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><rect width="28" height="28"/></svg>',
    );
    const images = [
      { base64: b64(good[0]) },
      { base64: b64(trouser.subarray(0, 120)) },
      { base64: b64(Buffer.from('not an image at all')) },
      { base64: b64(svg) },
      { base64: '' },
      { base64: '@@not base64@@' },
      { base64: b64(bomb) },
      { base64: b64(good[1]) },
    ];
    const r = await gql<{ screen: ScreenRow[] }>(server, SCREEN, { images });
    expect(r.status).toBe(200);
    const rows = r.body.data!.screen;
    expect(rows.map((x) => x.index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(rows.map((x) => x.error?.code ?? 'ok')).toEqual([
      'ok',
      'CORRUPT_IMAGE',
      'UNSUPPORTED_FORMAT',
      'UNSUPPORTED_FORMAT',
      'EMPTY_IMAGE',
      'INVALID_BASE64',
      'IMAGE_TOO_LARGE',
      'ok',
    ]);
    expect(rows[0].prediction!.label).toBeTruthy();
    expect(rows[7].prediction!.label).toBeTruthy();
  });
});

describe('request-level errors', () => {
  test('BAD_USER_INPUT: neither or both of file and base64, options out of range, wrong variable types', async () => {
    const neither = await gql(server, SCREEN, { images: [{ base64: b64(trouser) }, {}] });
    expect(errorCode(neither)).toBe('BAD_USER_INPUT');
    expect(neither.status).toBe(400);
    expect(neither.body.errors![0].message).toMatch(/images\[1\].*neither/);
    const both = await gqlMultipart(server, SCREEN, [trouser], {
      variables: { images: [{ file: null, base64: b64(trouser) }] },
    });
    expect(errorCode(both)).toBe('BAD_USER_INPUT');
    expect(both.body.errors![0].message).toMatch(/both/);
    const fpr = await gql(server, SCREEN, { images: [{ base64: b64(trouser) }], options: { targetFpr: 1.5 } });
    expect(errorCode(fpr)).toBe('BAD_USER_INPUT');
    const top = await gql(server, SCREEN, { images: [{ base64: b64(trouser) }], options: { top: 11 } });
    expect(errorCode(top)).toBe('BAD_USER_INPUT');
    const radius = await gql(server, 'mutation($i:[ImageInput!]!){ defend(images:$i, radius:-1){ index } }', {
      i: [{ base64: b64(trouser) }],
    });
    expect(errorCode(radius)).toBe('BAD_USER_INPUT');
    const types = await gql(server, SCREEN, { images: 'x' });
    expect(errorCode(types)).toBe('BAD_USER_INPUT');
  });

  test('PAYLOAD_TOO_LARGE: a file over the size limit, too many files, too many images, a body over the limit', async () => {
    const big = Buffer.alloc(70_000, 7);
    const file = await gqlMultipart(server, SCREEN, [big]);
    expect(errorCode(file)).toBe('PAYLOAD_TOO_LARGE');
    expect(file.status).toBe(413);
    const nine = Array.from({ length: 9 }, () => trouser);
    const manyFiles = await gqlMultipart(server, SCREEN, nine);
    expect(errorCode(manyFiles)).toBe('PAYLOAD_TOO_LARGE');
    expect(manyFiles.status).toBe(413);
    const manyImages = await gql(server, SCREEN, {
      images: Array.from({ length: 17 }, () => ({ base64: b64(trouser) })),
    });
    expect(errorCode(manyImages)).toBe('PAYLOAD_TOO_LARGE');
    const bigBase64 = await gql(server, SCREEN, { images: [{ base64: b64(Buffer.alloc(100_000, 1)) }] });
    expect(errorCode(bigBase64)).toBe('PAYLOAD_TOO_LARGE');
    const body = await gql(server, SCREEN, { images: [{ base64: b64(Buffer.alloc(300_000, 1)) }] });
    expect(body.status).toBe(413);
    expect(errorCode(body)).toBe('PAYLOAD_TOO_LARGE');
  });

  test('OVERLOADED when the engine queue cannot take the request, with a retry hint', async () => {
    const before = await engineStats(server);
    const images = good.slice(0, 13).map((g) => ({ base64: b64(g) }));
    const r = await gql(server, SCREEN, { images });
    expect(r.status).toBe(503);
    expect(errorCode(r)).toBe('OVERLOADED');
    expect(r.body.errors![0].extensions!.retryAfterMs).toEqual(expect.any(Number));
    expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await engineStats(server)).rejected).toBe(before.rejected + 13);
  });
});

describe('batching', () => {
  test('the same image twice, in two list entries and two fields, costs one inference', async () => {
    const before = await engineStats(server);
    const r = await gql<{ a: ScreenRow[]; b: Array<{ sha256: string; prediction: { classIndex: number } }> }>(
      server,
      `mutation($x: ImageInput!) {
        a: screen(images: [$x, $x]) { sha256 prediction { classIndex } }
        b: classify(images: [$x]) { sha256 prediction { classIndex } }
      }`,
      { x: { base64: b64(good[2]) } },
    );
    expect(r.body.errors).toBeUndefined();
    const { a, b } = r.body.data!;
    expect(new Set([a[0].sha256, a[1].sha256, b[0].sha256]).size).toBe(1);
    expect((await engineStats(server)).items - before.items).toBe(1);
    // A multipart file mapped to two places is one image too.
    const before2 = await engineStats(server);
    const m = await gqlMultipart<{ screen: ScreenRow[] }>(server, SCREEN, [good[3], good[3]], {
      map: { '0': ['variables.images.0.file', 'variables.images.1.file'] },
      parts: [{ name: '0', filename: 'x.png', contentType: 'image/png', data: good[3] }],
    });
    expect(m.body.data!.screen).toHaveLength(2);
    expect((await engineStats(server)).items - before2.items).toBe(1);
  });

  test('concurrent requests form fewer engine batches than images', async () => {
    const before = await engineStats(server);
    const n = 12;
    const rs = await Promise.all(
      good.slice(0, n).map((g) => gql<{ screen: ScreenRow[] }>(server, SCREEN, { images: [{ base64: b64(g) }] })),
    );
    for (const r of rs) expect(r.body.data!.screen[0].prediction).not.toBeNull();
    const after = await engineStats(server);
    expect(after.items - before.items).toBe(n);
    expect(after.batches - before.batches).toBeLessThan(n);
  });
});

describe('the other fields', () => {
  test('classify, and screen with the defense and the purified image', async () => {
    const c = await gql<{ classify: Array<{ prediction: { label: string; top: unknown[] } }> }>(
      server,
      'mutation($i:[ImageInput!]!){ classify(images:$i, top: 5){ prediction { label top { label score } } } }',
      { i: [{ base64: b64(trouser) }] },
    );
    expect(c.body.data!.classify[0].prediction.label).toBe('Trouser');
    expect(c.body.data!.classify[0].prediction.top).toHaveLength(5);
    const s = await gql<{ screen: ScreenRow[] }>(server, SCREEN, {
      images: [{ base64: b64(trouser) }],
      // A stricter rate than the operator's 0.05: a looser one is refused (test/api/hostile-policy.test.ts).
      options: { defend: true, returnPurifiedImage: true, targetFpr: 0.1 },
    });
    const row = s.body.data!.screen[0];
    expect(row.detection!.targetFpr).toBeCloseTo(0.1);
    expect(row.defense!.prediction.classIndex).toBe(1);
    const png = await sharp(Buffer.from(row.defense!.purifiedImage!, 'base64')).metadata();
    expect([png.format, png.width, png.height]).toEqual(['png', 28, 28]);
  });

  test('defend at the calibrated radius and at another one', async () => {
    const q = `mutation($i:[ImageInput!]!, $r: Float){ defend(images:$i, radius:$r){
      index radius kind changed prediction { classIndex } originalPrediction { classIndex } purifiedImage error { code } } }`;
    const images = [{ base64: b64(trouser) }, { base64: b64(Buffer.from('junk')) }];
    const d = (await gql<{ defend: Array<Record<string, unknown>> }>(server, q, { i: images })).body.data!.defend;
    const m = (
      await gql<{ model: { calibration: { lowPassRadius: number } } }>(
        server,
        '{ model { calibration { lowPassRadius } } }',
      )
    ).body.data!.model;
    expect(d[0].radius).toBe(m.calibration.lowPassRadius);
    expect(d[1].error).toEqual({ code: 'UNSUPPORTED_FORMAT' });
    const other = (await gql<{ defend: Array<Record<string, unknown>> }>(server, q, { i: images, r: 0.1 })).body.data!
      .defend[0] as { radius: number; purifiedImage: string; originalPrediction: { classIndex: number } };
    expect(other.radius).toBe(0.1);
    expect(other.originalPrediction.classIndex).toBe(1);
    expect(other.purifiedImage).not.toBe(d[0].purifiedImage);
  });

  test('trajectory and spectrum', async () => {
    const r = await gql<{
      trajectory: {
        prediction: { classIndex: number };
        steps: Array<{ layer: string; distances: number[]; nearestClass: number }>;
      };
      spectrum: {
        width: number;
        radial: Array<{ from: number; share: number }>;
        radialLogPower: number[];
        highFrequencyShare: number;
        logMagnitudePng: string;
      };
    }>(
      server,
      `query($x: ImageInput!) {
        trajectory(image: $x) { prediction { classIndex } steps { layer distances nearestClass nearestLabel } }
        spectrum(image: $x) { width height cutoff highFrequencyShare radial { from to power share } radialLogPower logMagnitudePng }
      }`,
      { x: { base64: b64(trouser) } },
    );
    expect(r.body.errors).toBeUndefined();
    const t = r.body.data!.trajectory;
    expect(t.steps.length).toBeGreaterThan(0);
    for (const s of t.steps) expect(s.distances).toHaveLength(10);
    expect(t.steps[t.steps.length - 1].nearestClass).toBe(t.prediction.classIndex);
    const sp = r.body.data!.spectrum;
    expect(sp.width).toBe(28);
    expect(sp.radial[0].from).toBe(0);
    expect(sp.radial.reduce((a, b) => a + b.share, 0)).toBeCloseTo(1, 4);
    // One mean log power per ring; the DC's ring (the trouser's brightness) far above the rest.
    expect(sp.radialLogPower).toHaveLength(sp.radial.length);
    expect(Math.max(...sp.radialLogPower)).toBe(sp.radialLogPower[0]);
    expect(sp.highFrequencyShare).toBeGreaterThanOrEqual(0);
    expect(sp.highFrequencyShare).toBeLessThanOrEqual(1);
    expect((await sharp(Buffer.from(sp.logMagnitudePng, 'base64')).metadata()).format).toBe('png');
  });

  test('attack: an FGSM image within its budget, screened; bad arguments are BAD_USER_INPUT', async () => {
    // A shirt the model gives 71 %: on an image whose softmax saturates to 1 in float32 the
    // cross-entropy gradient is exactly 0 and FGSM has no direction to step in.
    const shirt = fs.readFileSync(files.find((f) => f.includes('0004-shirt'))!);
    const q = `mutation($x: ImageInput!, $m: AttackMethod!, $e: Float!, $t: Int, $s: Int) {
      attack(image: $x, method: $m, epsilon: $e, targetClass: $t, steps: $s) {
        method epsilon steps success linf l2 original { classIndex } adversarial { classIndex } adversarialImage
        screening { detection { adversarial score } } error { code } } }`;
    const r = await gql<{
      attack: {
        method: string;
        linf: number;
        original: { classIndex: number };
        adversarialImage: string;
        screening: { detection: { score: number } };
      };
    }>(server, q, { x: { base64: b64(shirt) }, m: 'FGSM', e: 0.1 });
    expect(r.body.errors).toBeUndefined();
    const a = r.body.data!.attack;
    expect(a.method).toBe('FGSM');
    expect(a.original.classIndex).toBe(6);
    // Measured on the returned 16-bit PNG as decoded again: within ε, give or take a quantisation step.
    expect(a.linf).toBeLessThanOrEqual(0.1 + 0.5 / 255 + 1e-6);
    expect(a.linf).toBeGreaterThan(0.05);
    expect(typeof a.screening.detection.score).toBe('number');
    expect((await sharp(Buffer.from(a.adversarialImage, 'base64')).metadata()).depth).toBe('ushort');
    const target = await gql(server, q, { x: { base64: b64(trouser) }, m: 'PGD', e: 0.1, t: 10 });
    expect(errorCode(target)).toBe('BAD_USER_INPUT');
    const steps = await gql(server, q, { x: { base64: b64(trouser) }, m: 'PGD', e: 0.1, s: 21 });
    expect(errorCode(steps)).toBe('BAD_USER_INPUT');
  });
});

describe('metrics', () => {
  test('/metrics has requests and images by outcome, flags, batch sizes, queue wait, compute and detector scores', async () => {
    const res = await fetch(`${server.base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    const value = (pattern: RegExp) => Number(text.match(pattern)?.[1] ?? NaN);
    expect(value(/advsieve_requests_total\{operation="screen",outcome="ok"\} (\d+)/)).toBeGreaterThan(0);
    expect(value(/advsieve_requests_total\{operation="screen",outcome="OVERLOADED"\} (\d+)/)).toBe(1);
    // Per model: the default one's series (the `models` tests below have a second model's).
    const m = 'model="fashion-cnn"';
    expect(value(new RegExp(`advsieve_images_total\\{${m},operation="screen",outcome="ok"\\} (\\d+)`))).toBeGreaterThan(
      0,
    );
    expect(
      value(new RegExp(`advsieve_images_total\\{${m},operation="screen",outcome="CORRUPT_IMAGE"\\} (\\d+)`)),
    ).toBeGreaterThan(0);
    expect(text).toMatch(new RegExp(`^advsieve_images_flagged_total\\{${m}\\} \\d+`, 'm'));
    expect(value(new RegExp(`advsieve_engine_batch_size_count\\{${m}\\} (\\d+)`))).toBeGreaterThan(0);
    expect(value(new RegExp(`advsieve_engine_queue_wait_seconds_count\\{${m}\\} (\\d+)`))).toBeGreaterThan(0);
    expect(value(new RegExp(`advsieve_engine_batch_compute_seconds_count\\{${m}\\} (\\d+)`))).toBeGreaterThan(0);
    expect(value(new RegExp(`advsieve_detector_score_count\\{${m},detector="combined"\\} (\\d+)`))).toBeGreaterThan(0);
    expect(value(new RegExp(`advsieve_detector_score_count\\{${m},detector="mahalanobis"\\} (\\d+)`))).toBeGreaterThan(
      0,
    );
    expect(value(new RegExp(`advsieve_workers_ready\\{${m}\\} (\\d+)`))).toBeGreaterThan(0);
    // This scrape's own connection at least; none closed by the connection limits.
    expect(value(/^advsieve_connections_open (\d+)/m)).toBeGreaterThan(0);
    expect(value(/^advsieve_connections_under_pressure (\d+)/m)).toBe(0);
    for (const reason of ['per_address', 'full', 'evicted'])
      expect(value(new RegExp(`advsieve_connections_closed_by_limit\\{reason="${reason}"\\} (\\d+)`))).toBe(0);
  });
});
