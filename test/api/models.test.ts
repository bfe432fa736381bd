/**
 * Several models in one service (ADVSIEVE_MODELS): the `models` query, routing by each field's
 * `model` argument (each image decoded to that model's input and run by that model's engine, the
 * default when none is named), UNKNOWN_MODEL, per-model metrics, health and the audit log's modelId.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend } from '../../src/engine/backends';
import { checkModels } from '../../src/server/screeningModel';
import { BUNDLED_MODEL_DIR } from '../helpers/fixtures';
import { makeRgbModel, RGB_MODEL_ID } from '../helpers/rgbModel';
import { errorCode, fixtureFiles, gql, startServer, TestServer } from './helpers';

let dir: string;
let server: TestServer;
let rgbSha: string;

beforeAll(async () => {
  await initBackend('wasm');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'advsieve-models-'));
  rgbSha = await makeRgbModel(path.join(dir, RGB_MODEL_ID));
  server = await startServer({ ADVSIEVE_MODELS: path.join(dir, RGB_MODEL_ID), ADVSIEVE_WORKERS: '1' });
}, 240_000);

afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const base64Of = (file: string) => fs.readFileSync(file).toString('base64');

interface Stats {
  items: number;
}

async function itemsOf(model: string | null): Promise<number> {
  const r = await gql<{ engineStats: Stats }>(server, 'query ($m: String) { engineStats(model: $m) { items } }', {
    m: model,
  });
  return r.body.data!.engineStats.items;
}

test('`models` lists every model, the default first, each with its own shape, SHA-256 and calibration', async () => {
  const r = await gql<{ models: Array<{ id: string; sha256: string; inputShape: number[]; calibration: unknown }> }>(
    server,
    '{ models { id sha256 inputShape labels tokensPerImage forwardFlops calibration { modelSha256 thresholdImages } } }',
  );
  expect(r.body.errors).toBeUndefined();
  const models = r.body.data!.models;
  expect(models.map((m) => m.id)).toEqual(['fashion-cnn', RGB_MODEL_ID]);
  expect(models[0].inputShape).toEqual([28, 28, 1]);
  expect(models[1].inputShape).toEqual([32, 32, 3]);
  expect(models[1].sha256).toBe(rgbSha);
  expect(models[1].calibration).toMatchObject({ modelSha256: rgbSha });
  // Priced by FLOPs (src/engine/modelCost.ts): both near the bundled model's, so 1 token an image.
  expect(models.map((m) => (m as unknown as { tokensPerImage: number }).tokensPerImage)).toEqual([1, 1]);
  const one = await gql<{ model: { id: string } }>(server, `{ model(id: "${RGB_MODEL_ID}") { id } }`);
  expect(one.body.data!.model.id).toBe(RGB_MODEL_ID);
  const dflt = await gql<{ model: { id: string } }>(server, '{ model { id } }');
  expect(dflt.body.data!.model.id).toBe('fashion-cnn');
});

test('each field runs on the model it names — on that model’s engine only — and says which', async () => {
  const files = fixtureFiles().slice(0, 4);
  const images = files.map((f) => ({ base64: base64Of(f) }));
  const [defaultBefore, rgbBefore] = [await itemsOf(null), await itemsOf(RGB_MODEL_ID)];
  const r = await gql<{
    a: Array<{ model: string; prediction: { label: string }; detection: { score: number } }>;
    b: Array<{ model: string; prediction: { label: string }; detection: { score: number } }>;
  }>(
    server,
    `query Q($images: [ImageInput!]!, $m: String) {
       a: screen(images: $images) { model prediction { label } detection { score } }
       b: screen(images: $images, model: $m) { model prediction { label } detection { score } }
     }`.replace('query Q', 'mutation Q'),
    { images, m: RGB_MODEL_ID },
  );
  expect(r.body.errors).toBeUndefined();
  expect(r.body.data!.a.map((x) => x.model)).toEqual(files.map(() => 'fashion-cnn'));
  expect(r.body.data!.b.map((x) => x.model)).toEqual(files.map(() => RGB_MODEL_ID));
  for (const x of [...r.body.data!.a, ...r.body.data!.b]) expect(Number.isFinite(x.detection.score)).toBe(true);
  // Each image once per model: 4 on each engine, none crossing over.
  expect((await itemsOf(null)) - defaultBefore).toBe(files.length);
  expect((await itemsOf(RGB_MODEL_ID)) - rgbBefore).toBe(files.length);
});

test('classify, defend, trajectory and spectrum take `model` too', async () => {
  const image = { base64: base64Of(fixtureFiles()[0]) };
  const m = await gql<{
    classify: Array<{ model: string }>;
    defend: Array<{ model: string; purifiedImage: string }>;
  }>(
    server,
    `mutation ($image: ImageInput!, $m: String) {
       classify(images: [$image], model: $m) { model }
       defend(images: [$image], model: $m) { model purifiedImage }
     }`,
    { image, m: RGB_MODEL_ID },
  );
  expect(m.body.errors).toBeUndefined();
  expect(m.body.data!.classify[0].model).toBe(RGB_MODEL_ID);
  expect(m.body.data!.defend[0].model).toBe(RGB_MODEL_ID);
  // The purified image is the model's input size: a 32×32 PNG (width and height at bytes 16-23).
  const png = Buffer.from(m.body.data!.defend[0].purifiedImage, 'base64');
  expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([32, 32]);
  const q = await gql<{
    trajectory: { model: string; steps: Array<{ layer: string }> };
    spectrum: { model: string; highFrequencyShare: number };
  }>(
    server,
    `query ($image: ImageInput!, $m: String) {
       trajectory(image: $image, model: $m) { model steps { layer } }
       spectrum(image: $image, model: $m) { model }
     }`,
    { image, m: RGB_MODEL_ID },
  );
  expect(q.body.errors).toBeUndefined();
  expect(q.body.data!.trajectory.model).toBe(RGB_MODEL_ID);
  expect(q.body.data!.spectrum.model).toBe(RGB_MODEL_ID);
});

test('explain: Grad-CAM maps for the predicted class and those asked for, on either model, with overlays of the input size', async () => {
  const image = { base64: base64Of(fixtureFiles()[0]) };
  const query = `query ($image: ImageInput!, $m: String, $c: [Int!]) {
    explain(image: $image, classes: $c, model: $m) {
      model layer prediction { classIndex } maps { classIndex label logit height width values overlay }
    }
  }`;
  for (const [m, size, layer] of [
    [null, 28, 'conv2'],
    [RGB_MODEL_ID, 32, 'conv2'],
  ] as const) {
    const r = await gql<{
      explain: {
        model: string;
        layer: string;
        prediction: { classIndex: number };
        maps: Array<{ classIndex: number; height: number; width: number; values: number[]; overlay: string }>;
      };
    }>(server, query, { image, m, c: [1, 3] });
    expect(r.body.errors).toBeUndefined();
    const e = r.body.data!.explain;
    expect(e.model).toBe(m ?? 'fashion-cnn');
    expect(e.layer).toBe(layer);
    const wanted = [e.prediction.classIndex, ...[1, 3].filter((k) => k !== e.prediction.classIndex)];
    expect(e.maps.map((x) => x.classIndex)).toEqual(wanted);
    for (const map of e.maps) {
      expect(map.values).toHaveLength(map.height * map.width);
      expect(Math.max(...map.values)).toBeLessThanOrEqual(1 + 1e-6);
      expect(Math.min(...map.values)).toBeGreaterThanOrEqual(0);
      const png = Buffer.from(map.overlay, 'base64');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([size, size]);
    }
    // The predicted class has evidence somewhere.
    expect(Math.max(...e.maps[0].values)).toBeCloseTo(1, 5);
  }
  const bad = await gql(server, query, { image, m: null, c: [42] });
  expect(errorCode(bad)).toBe('BAD_USER_INPUT');
  const audit = await gql<{ screenings: { edges: Array<{ node: { operation: string } }> } }>(
    server,
    '{ screenings(first: 5, filter: { operation: "explain" }) { edges { node { operation } } } }',
  );
  expect(audit.body.errors).toBeUndefined();
  expect(audit.body.data!.screenings.edges.length).toBeGreaterThanOrEqual(2);
});

test('compare: an image and an FGSM version of it — the perturbation within ε, its spectrum, promotion–suppression, both Grad-CAMs and trajectories', async () => {
  const clean = { base64: base64Of(fixtureFiles()[0]) };
  const made = await gql<{ attack: { adversarialImage: string; success: boolean } }>(
    server,
    'mutation ($i: ImageInput!) { attack(image: $i, method: FGSM, epsilon: 0.2) { adversarialImage success } }',
    { i: clean },
  );
  expect(made.body.errors).toBeUndefined();
  const suspect = { base64: made.body.data!.attack.adversarialImage };
  const query = `query ($c: ImageInput!, $s: ImageInput!) {
    compare(clean: $c, suspect: $s) {
      model
      clean { prediction { classIndex } cam { classIndex values } trajectory { layer } }
      suspect { prediction { classIndex } cam { classIndex values } trajectory { layer } }
      perturbation { linf l2 amplification image }
      perturbationSpectrum { highFrequencyShare logMagnitudePng }
      promotionSuppression { type originClass targetClass drop rise layers { layer type } }
      classSpectrum { classIndex available similarity rank classesRanked }
    }
  }`;
  type Side = {
    prediction: { classIndex: number };
    cam: { classIndex: number; values: number[] };
    trajectory: unknown[];
  };
  const r = await gql<{
    compare: {
      model: string;
      clean: Side;
      suspect: Side;
      perturbation: { linf: number; l2: number; amplification: number; image: string };
      perturbationSpectrum: { highFrequencyShare: number; logMagnitudePng: string };
      promotionSuppression: {
        type: string;
        originClass: number;
        targetClass: number;
        drop: number;
        layers: Array<{ layer: string; type: string }>;
      } | null;
      classSpectrum: {
        classIndex: number;
        available: boolean;
        similarity: number;
        rank: number;
        classesRanked: number;
      };
    };
  }>(server, query, { c: clean, s: suspect });
  expect(r.body.errors).toBeUndefined();
  const c = r.body.data!.compare;
  expect(c.model).toBe('fashion-cnn');
  expect(c.perturbation.linf).toBeGreaterThan(0.1);
  expect(c.perturbation.linf).toBeLessThanOrEqual(0.2 + 1e-3);
  expect(c.perturbation.amplification).toBeCloseTo(0.5 / c.perturbation.linf, 5);
  expect(c.perturbationSpectrum.highFrequencyShare).toBeGreaterThan(0);
  expect(c.perturbationSpectrum.logMagnitudePng.length).toBeGreaterThan(100);
  for (const side of [c.clean, c.suspect]) {
    expect(side.cam.classIndex).toBe(side.prediction.classIndex);
    expect(side.trajectory.length).toBeGreaterThan(0);
  }
  if (c.clean.prediction.classIndex !== c.suspect.prediction.classIndex) {
    expect(c.promotionSuppression).toMatchObject({
      originClass: c.clean.prediction.classIndex,
      targetClass: c.suspect.prediction.classIndex,
    });
    expect(['suppression', 'promotion', 'balanced']).toContain(c.promotionSuppression!.type);
    // Typed again at every layer the detectors read (the bundled calibration's activation-distance layers).
    expect(c.promotionSuppression!.layers.map((l) => l.layer)).toEqual(['conv1', 'conv2', 'fc1', 'logits']);
  } else expect(c.promotionSuppression).toBeNull();
  // The bundled calibration has class spectra: the perturbation is held against its target's.
  expect(c.classSpectrum).toMatchObject({
    classIndex: c.suspect.prediction.classIndex,
    available: true,
    classesRanked: 10,
  });
  expect(Math.abs(c.classSpectrum.similarity)).toBeLessThanOrEqual(1);
  // An image against itself: no perturbation, no change of class.
  const same = await gql<{ compare: { perturbation: { linf: number }; promotionSuppression: unknown } }>(
    server,
    query,
    {
      c: clean,
      s: clean,
    },
  );
  expect(same.body.data!.compare.perturbation.linf).toBe(0);
  expect(same.body.data!.compare.promotionSuppression).toBeNull();
});

test('an unknown model is UNKNOWN_MODEL (400) naming the models served; nothing is run', async () => {
  const before = await itemsOf(null);
  const r = await gql(server, 'mutation ($i: [ImageInput!]!) { screen(images: $i, model: "nope") { model } }', {
    i: [{ base64: base64Of(fixtureFiles()[0]) }],
  });
  expect(errorCode(r)).toBe('UNKNOWN_MODEL');
  expect(r.status).toBe(400);
  expect(r.body.errors![0].message).toMatch(/'nope'.*fashion-cnn, fashion-rgb32/);
  expect(r.body.errors![0].extensions).toMatchObject({ models: ['fashion-cnn', RGB_MODEL_ID] });
  expect(await itemsOf(null)).toBe(before);
  const long = await gql(server, 'query ($m: String) { model(id: $m) { id } }', { m: 'x'.repeat(100_000) });
  expect(errorCode(long)).toBe('UNKNOWN_MODEL');
  expect(long.body.errors![0].message.length).toBeLessThan(300);
});

test('metrics, readiness and the audit log tell the models apart', async () => {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  expect(text).toMatch(
    new RegExp(`^advsieve_images_total\\{model="${RGB_MODEL_ID}",operation="screen",outcome="ok"\\} [1-9]`, 'm'),
  );
  expect(text).toMatch(new RegExp(`^advsieve_workers_ready\\{model="${RGB_MODEL_ID}"\\} 1$`, 'm'));
  expect(text).toMatch(/^advsieve_workers_ready\{model="fashion-cnn"\} 1$/m);
  const health = (await (await fetch(`${server.base}/health/ready`)).json()) as {
    readyWorkers: number;
    models: Array<{ id: string; readyWorkers: number }>;
  };
  expect(health.readyWorkers).toBe(2);
  expect(health.models.map((m) => m.id)).toEqual(['fashion-cnn', RGB_MODEL_ID]);
  const audit = await gql<{ screenings: { edges: Array<{ node: { modelId: string; modelSha256: string } }> } }>(
    server,
    '{ screenings(first: 100) { edges { node { modelId modelSha256 } } } }',
  );
  expect(audit.body.errors).toBeUndefined();
  const ids = new Set(audit.body.data!.screenings.edges.map((e) => `${e.node.modelId} ${e.node.modelSha256}`));
  expect(ids).toContain(`${RGB_MODEL_ID} ${rgbSha}`);
  expect([...ids].some((s) => s.startsWith('fashion-cnn '))).toBe(true);
});

test('two models with one id are refused before anything starts, naming both directories', () => {
  const twin = path.join(dir, 'twin');
  fs.cpSync(BUNDLED_MODEL_DIR, twin, { recursive: true });
  expect(() => checkModels([{ dir: BUNDLED_MODEL_DIR }, { dir: twin }])).toThrow(
    new RegExp(`two models have the id 'fashion-cnn' \\(${BUNDLED_MODEL_DIR} and ${twin}\\)`),
  );
});
