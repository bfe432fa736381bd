/**
 * What each GraphQL field does, over the service and the request's images; the resolvers only map
 * arguments to these. Per image, a result carries either the answer or that image's error.
 */
import * as tf from '@tensorflow/tfjs';
import { createHash } from 'crypto';
import type { AttackName } from '../attacks/attack';
import { DEFAULT_CW_STEPS } from '../attacks/cw';
import { DEFAULT_PGD_STEPS } from '../attacks/pgd';
import { DEFAULT_SQUARE_QUERIES } from '../attacks/square';
import { encodePng16 } from '../images/encode';
import type { ImageOutput } from '../engine/model';
import { highFrequencyShare, lowPassImages, powerSpectrum, radialFrequencyGrid } from '../engine/spectra';
import { decodeImage } from '../images/decode';
import { heatmapGrid } from '../report/plots';
import { prediction, ScreenOutcome } from '../screening/screener';
import { mostSuspiciousView } from '../screening/views';
import type { AttackResult } from '../schema/attack-result.type';
import type { ClassifyResult } from '../schema/classify-result.type';
import type { DefendResult } from '../schema/defend-result.type';
import type { ImageInput } from '../schema/image.input';
import type { ScreenOptions } from '../schema/screen-options.input';
import type { ScreenResult } from '../schema/screen-result.type';
import type { RadialBand, SpectrumResult } from '../schema/spectrum.type';
import type { TrajectoryResult } from '../schema/trajectory.type';
import { recordVerdicts } from '../audit/records';
import { AttackQueueFullError } from './attackRunner';
import { attackQueueFull, attacksDisabled, badUserInput, ImageFailure } from './errors';
import { isFailed, ReadImage, RequestImages } from './requestImages';
import type { ScreeningService } from './service';

/** Who sent a request: the API key's id and its scopes (undefined when no keys are configured). */
export interface Principal {
  readonly keyId: string;
  readonly scopes: ReadonlySet<'screen' | 'attack' | 'admin'>;
}

/** What every resolver gets: the process's service, this request's images, who asked, and the request's id. */
export interface ApiContext {
  readonly service: ScreeningService;
  readonly images: RequestImages;
  /** The caller, once authenticated; undefined when the gateway has no keys configured. */
  readonly principal: Principal | undefined;
  /** The request's id: the client's `x-request-id` when it sent a sane one, else a new UUID; logged and audited. */
  readonly requestId: string;
  /** When the request must be answered by: a performance.now() time, from its arrival plus ADVSIEVE_REQUEST_TIMEOUT_MS. */
  readonly deadline: number;
}

const ATTACK_DEFAULT_STEPS: Readonly<Record<AttackName, number>> = {
  fgsm: 1,
  pgd: DEFAULT_PGD_STEPS,
  cw: DEFAULT_CW_STEPS,
  square: DEFAULT_SQUARE_QUERIES,
};

function errorOf(f: ImageFailure): { code: string; message: string } {
  return { code: f.code, message: f.message };
}

function checkTop(service: ScreeningService, top: number | null | undefined): number {
  const k = service.metadata.labels.length;
  if (top == null) return Math.min(service.config.topK, k);
  if (!(Number.isInteger(top) && top >= 1 && top <= k))
    throw badUserInput(`top must be an integer in [1, ${k}], got ${top}`, 'top');
  return top;
}

function checkFpr(service: ScreeningService, fpr: number | null | undefined): number {
  if (fpr == null) return service.defaultTargetFpr;
  if (!(fpr > 0 && fpr < 1)) throw badUserInput(`targetFpr must be in (0, 1), got ${fpr}`, 'targetFpr');
  return fpr;
}

/** Counts each image's outcome under the field's name. */
function count(service: ScreeningService, operation: string, results: ReadonlyArray<{ error?: { code: string } }>) {
  for (const r of results) service.metrics.images.inc({ operation, outcome: r.error?.code ?? 'ok' });
}

/** Reads one field's images and infers them in one engine call. */
async function readAndInfer(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  argumentName: string,
): Promise<{ images: ReadImage[]; outputs: Array<ImageOutput | ImageFailure> }> {
  const images = await ctx.images.read(inputs, argumentName);
  return { images, outputs: await ctx.images.infer(images) };
}

export async function classify(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  top: number | null | undefined,
): Promise<ClassifyResult[]> {
  const k = checkTop(ctx.service, top);
  const { images, outputs } = await readAndInfer(ctx, inputs, 'images');
  const labels = ctx.service.metadata.labels;
  const results = images.map((img, i): ClassifyResult => {
    const out = outputs[i];
    if (out instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(out) };
    return { index: i, sha256: img.sha256, prediction: prediction(out.probs, labels, k) };
  });
  count(ctx.service, 'classify', results);
  return results;
}

export async function screen(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  options: ScreenOptions | null | undefined,
): Promise<ScreenResult[]> {
  const service = ctx.service;
  const targetFpr = checkFpr(service, options?.targetFpr);
  const top = checkTop(service, options?.top);
  // Every view of every image (alpha-dropped, frames: src/images/decode.ts), in one engine call.
  const images = await ctx.images.read(inputs, 'images');
  const outputs = await ctx.images.inferViews(images);
  const results = await Promise.all(
    images.map(async (img, i): Promise<ScreenResult> => {
      const viewOutputs = outputs[i];
      if (viewOutputs instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(viewOutputs) };
      const failed = viewOutputs.find((v) => v.output instanceof ImageFailure);
      if (failed) return { index: i, sha256: img.sha256, error: errorOf(failed.output as ImageFailure) };
      const screened = viewOutputs.map((v) => {
        const out = v.output as ImageOutput;
        return { name: v.name, out, outcome: service.screener.screen(out, { targetFpr, top }) };
      });
      const { chosen, views, flaggedView } = mostSuspiciousView(screened);
      observeScores(service, chosen.outcome);
      return {
        index: i,
        sha256: img.sha256,
        prediction: chosen.outcome.prediction,
        detection: chosen.outcome.detection,
        views,
        flaggedView,
        defense: options?.defend
          ? await defenseResult(
              i,
              img.sha256,
              chosen.outcome,
              chosen.out,
              options.returnPurifiedImage === true,
              service,
            )
          : undefined,
      };
    }),
  );
  count(service, 'screen', results);
  // Recorded before the response leaves: a verdict the log does not have is not sent (AUDIT_UNAVAILABLE).
  await recordVerdicts(ctx, 'screen', images, results);
  return results;
}

function observeScores(service: ScreeningService, outcome: ScreenOutcome): void {
  const d = outcome.detection;
  for (const s of d.detectors) service.metrics.detectorScore.observe({ detector: s.name }, s.score);
  service.metrics.detectorScore.observe({ detector: 'combined' }, d.score);
  if (d.adversarial) service.metrics.flagged.inc();
}

/** The defense at the calibrated radius: computed in the engine's batch already. */
async function defenseResult(
  index: number,
  sha256: string | undefined,
  outcome: ScreenOutcome,
  out: ImageOutput,
  withImage: boolean,
  service: ScreeningService,
): Promise<DefendResult> {
  const { radius, kind, prediction: after } = outcome.defense;
  return {
    index,
    sha256,
    radius,
    kind,
    prediction: after,
    originalPrediction: outcome.prediction,
    changed: after.classIndex !== outcome.prediction.classIndex,
    purifiedImage:
      withImage && out.lowPassPixels ? await pngBase64(out.lowPassPixels, service.metadata.inputShape) : undefined,
  };
}

async function pngBase64(pixels: Float32Array, shape: readonly [number, number, number]): Promise<string> {
  return (await encodePng16(pixels, shape)).toString('base64');
}

export async function defend(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  radius: number | null | undefined,
): Promise<DefendResult[]> {
  const service = ctx.service;
  const calibrated = service.calibration.lowPass;
  if (radius != null && !(radius > 0 && radius <= 1))
    throw badUserInput(`radius must be in (0, 1] cycles per pixel, got ${radius}`, 'radius');
  const r = radius ?? calibrated.radius;
  const kind = calibrated.kind;
  const { images, outputs } = await readAndInfer(ctx, inputs, 'images');
  const labels = service.metadata.labels;
  const shape = service.metadata.inputShape;
  const k = checkTop(service, undefined);
  // Another radius than the engine's: filter here (a few small DFTs), classify through the engine.
  const filtered = new Map<number, Float32Array>();
  if (r !== calibrated.radius) {
    const good = images.flatMap((img, i) => (outputs[i] instanceof ImageFailure || isFailed(img) ? [] : [i]));
    const pixels = lowPass(
      good.map((i) => (images[i] as { pixels: Float32Array }).pixels),
      shape,
      r,
      kind,
    );
    good.forEach((i, j) => filtered.set(i, pixels[j]));
  }
  const refiltered = await ctx.images.inferPixels(
    [...filtered].map(([i, pixels]) => ({ key: `${images[i].sha256}:lowpass:${r}:${kind}`, pixels })),
  );
  const after = new Map([...filtered.keys()].map((i, j) => [i, refiltered[j]]));
  const results = await Promise.all(
    images.map(async (img, i): Promise<DefendResult> => {
      const out = outputs[i];
      if (out instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(out) };
      const re = after.get(i);
      if (re instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(re) };
      const probs = re ? re.probs : out.lowPassProbs!;
      const pixels = filtered.get(i) ?? out.lowPassPixels!;
      const original = prediction(out.probs, labels, k);
      const defended = prediction(probs, labels, k);
      return {
        index: i,
        sha256: img.sha256,
        radius: r,
        kind,
        prediction: defended,
        originalPrediction: original,
        changed: defended.classIndex !== original.classIndex,
        purifiedImage: await pngBase64(pixels, shape),
      };
    }),
  );
  count(service, 'defend', results);
  return results;
}

/** Low-pass per channel on this thread; one H×W×C array per image. */
function lowPass(
  images: readonly Float32Array[],
  [h, w, c]: readonly [number, number, number],
  radius: number,
  kind: 'ideal' | 'gaussian',
): Float32Array[] {
  if (!images.length) return [];
  const size = h * w * c;
  const all = new Float32Array(images.length * size);
  images.forEach((p, i) => all.set(p, i * size));
  const out = tf.tidy(() => lowPassImages(tf.tensor4d(all, [images.length, h, w, c]), radius, kind));
  const data = out.dataSync() as Float32Array;
  out.dispose();
  return images.map((_, i) => data.slice(i * size, (i + 1) * size));
}

export async function trajectory(ctx: ApiContext, input: ImageInput): Promise<TrajectoryResult> {
  const service = ctx.service;
  const { images, outputs } = await readAndInfer(ctx, [input], 'image');
  const out = outputs[0];
  const sha256 = images[0].sha256;
  const result: TrajectoryResult =
    out instanceof ImageFailure
      ? { sha256, error: errorOf(out) }
      : {
          sha256,
          prediction: prediction(out.probs, service.metadata.labels, checkTop(service, undefined)),
          steps: service.screener.trajectory(out).map((s) => ({
            ...s,
            nearestLabel: service.metadata.labels[s.nearestClass],
          })),
        };
  count(service, 'trajectory', [result]);
  return result;
}

export async function spectrum(ctx: ApiContext, input: ImageInput): Promise<SpectrumResult> {
  const service = ctx.service;
  const [img] = await ctx.images.read([input], 'image');
  let result: SpectrumResult;
  if (isFailed(img)) result = { sha256: img.sha256, error: errorOf(img.failure) };
  else {
    const cutoff = (service.calibration.detectors.highFrequency as { cutoff: number }).cutoff;
    result = { sha256: img.sha256, ...(await spectrumOf(img.pixels, service.metadata.inputShape, cutoff)) };
  }
  count(service, 'spectrum', [result]);
  return result;
}

/** Power spectrum per channel: radial profile (channels summed), high-frequency share, a PNG. */
async function spectrumOf(
  pixels: Float32Array,
  [h, w, c]: readonly [number, number, number],
  cutoff: number,
): Promise<Omit<SpectrumResult, 'sha256' | 'error'>> {
  const { power, share } = tf.tidy(() => {
    const planes = tf.transpose(tf.tensor3d(pixels, [h, w, c]), [2, 0, 1]) as tf.Tensor3D; // [C, H, W]
    return {
      power: powerSpectrum(planes).dataSync() as Float32Array,
      share: highFrequencyShare(planes, cutoff).dataSync(),
    };
  });
  const r = radialFrequencyGrid(h, w);
  const step = 1 / Math.min(h, w);
  const bands = Math.ceil(Math.max(...r) / step + 1e-9);
  const sums = new Float64Array(bands);
  const bins = new Float64Array(bands);
  let total = 0;
  r.forEach((f, bin) => {
    if (f === 0) return; // DC: the mean brightness, not texture
    const b = Math.min(bands - 1, Math.floor(f / step));
    for (let ch = 0; ch < c; ch++) sums[b] += power[ch * h * w + bin];
    bins[b] += 1;
    for (let ch = 0; ch < c; ch++) total += power[ch * h * w + bin];
  });
  const radial: RadialBand[] = Array.from(sums, (s, b) => ({
    from: b * step,
    to: (b + 1) * step,
    power: bins[b] ? s / bins[b] : 0,
    share: total > 0 ? s / total : 0,
  }));
  const names = c === 1 ? ['grey'] : ['red', 'green', 'blue'];
  const png = await heatmapGrid(
    'log power spectrum',
    names.map((label, ch) => ({ label, width: w, height: h, values: power.subarray(ch * h * w, (ch + 1) * h * w) })),
    { log: true, shift: true, columns: c },
  );
  return {
    width: w,
    height: h,
    radial,
    cutoff,
    highFrequencyShare: Array.from(share).reduce((a, b) => a + b, 0) / share.length,
    logMagnitudePng: png.toString('base64'),
  };
}

export interface AttackArgs {
  readonly image: ImageInput;
  readonly method: AttackName;
  readonly epsilon: number;
  readonly targetClass?: number | null;
  readonly steps?: number | null;
  readonly seed?: number | null;
}

function checkAttack(service: ScreeningService, a: AttackArgs): number {
  const numClasses = service.metadata.labels.length;
  if (!(a.epsilon >= 0 && a.epsilon <= 1000))
    throw badUserInput(`epsilon must be in [0, 1000], got ${a.epsilon}`, 'epsilon');
  if (a.targetClass != null && !(Number.isInteger(a.targetClass) && a.targetClass >= 0 && a.targetClass < numClasses))
    throw badUserInput(`targetClass must be a class index in [0, ${numClasses}), got ${a.targetClass}`, 'targetClass');
  const max = service.config.attackMaxSteps;
  if (a.steps != null && !(Number.isInteger(a.steps) && a.steps >= 1 && a.steps <= max))
    throw badUserInput(`steps must be an integer in [1, ${max}], got ${a.steps}`, 'steps');
  return a.steps ?? Math.min(ATTACK_DEFAULT_STEPS[a.method], max);
}

export async function attack(ctx: ApiContext, a: AttackArgs): Promise<AttackResult> {
  const service = ctx.service;
  if (!service.attacks) throw attacksDisabled(service.config.production);
  const steps = checkAttack(service, a);
  const base = { method: a.method, epsilon: a.epsilon, targetClass: a.targetClass ?? undefined, steps };
  const { images, outputs } = await readAndInfer(ctx, [a.image], 'image');
  const [img] = images;
  const out = outputs[0];
  if (out instanceof ImageFailure || isFailed(img)) {
    const failure = out instanceof ImageFailure ? out : (img as { failure: ImageFailure }).failure;
    count(service, 'attack', [{ error: failure }]);
    return { ...base, sha256: img.sha256, error: errorOf(failure) };
  }
  const labels = service.metadata.labels;
  const original = prediction(out.probs, labels, checkTop(service, undefined));
  let adv: Float32Array;
  try {
    adv = await service.attacks.run({
      pixels: img.pixels.slice(),
      label: original.classIndex,
      method: a.method,
      epsilon: a.epsilon,
      targetClass: a.targetClass ?? undefined,
      steps: a.method === 'fgsm' ? undefined : steps,
      seed: a.seed ?? 0,
    });
  } catch (err) {
    if (err instanceof AttackQueueFullError) throw attackQueueFull(err.waiting, err.retryAfterMs);
    throw err;
  }
  // What the client gets is the PNG; everything reported is about that file as advsieve decodes it.
  const shape = service.metadata.inputShape;
  const png = await encodePng16(adv, shape);
  const written = (await decodeImage(png, shape)).pixels;
  const pngSha = createHash('sha256').update(png).digest('hex');
  const [advOut] = await ctx.images.inferPixels([{ key: pngSha, pixels: written }]);
  if (advOut instanceof ImageFailure) return { ...base, sha256: img.sha256, original, error: errorOf(advOut) };
  const outcome = service.screener.screen(advOut, { top: checkTop(service, undefined) });
  const adversarial = outcome.prediction;
  let linf = 0;
  let sq = 0;
  written.forEach((v, i) => {
    const d = Math.abs(v - img.pixels[i]);
    linf = Math.max(linf, d);
    sq += d * d;
  });
  count(service, 'attack', [{}]);
  const screening = { index: 0, sha256: pngSha, prediction: outcome.prediction, detection: outcome.detection };
  await recordVerdicts(ctx, 'attack', [{ sha256: pngSha, bytes: png.length, data: png }], [screening]);
  return {
    ...base,
    sha256: img.sha256,
    original,
    adversarial,
    success:
      a.targetClass != null ? adversarial.classIndex === a.targetClass : adversarial.classIndex !== original.classIndex,
    linf,
    l2: Math.sqrt(sq),
    adversarialImage: png.toString('base64'),
    screening,
  };
}
