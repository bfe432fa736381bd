/**
 * What each GraphQL field does, over the service and the request's images; the resolvers only map
 * arguments to these. Per image, a result carries either the answer or that image's error.
 */
import { createHash } from 'crypto';
import type { AttackName } from '../attacks/attack';
import { DEFAULT_CW_STEPS } from '../attacks/cw';
import { DEFAULT_PGD_STEPS } from '../attacks/pgd';
import { DEFAULT_SQUARE_QUERIES } from '../attacks/square';
import { encodePng16 } from '../images/encode';
import type { ImageOutput } from '../engine/model';
import { decodeImage } from '../images/decode';
import { prediction, ScreenOutcome } from '../screening/screener';
import { mostSuspiciousView } from '../screening/views';
import type { AttackResult } from '../schema/attack-result.type';
import type { ClassifyResult } from '../schema/classify-result.type';
import type { DefendResult } from '../schema/defend-result.type';
import type { ImageInput } from '../schema/image.input';
import type { ScreenOptions } from '../schema/screen-options.input';
import type { ScreenResult } from '../schema/screen-result.type';
import type { SpectrumResult } from '../schema/spectrum.type';
import type { TrajectoryResult } from '../schema/trajectory.type';
import type { ClassActivationMap, ExplainResult } from '../schema/explain.type';
import { overlay } from '../explain/overlay';
import { DeadlineExceededError } from '../engine/batcher';
import { recordVerdicts } from '../audit/records';
import { AttackQueueFullError } from './attackRunner';
import { attackQueueFull, attacksDisabled, badUserInput, deadlineExceeded, ImageFailure } from '../request/errors';
import { isFailed, ReadImage, RequestImages } from './requestImages';
import type { ScreeningService } from './service';
import type { ScreeningModel } from './screeningModel';
import { targetFprFor } from './thresholdPolicy';
import { attackTokens, TOKENS_PER_IMAGE } from '../request/fieldCosts';
import type { RequestContext } from '../request/context';
import type { JobStore } from '../jobs/jobStore';

/** What every resolver gets: the request (src/request/context.ts), the process's service and this request's images. */
export interface ApiContext extends RequestContext {
  readonly service: ScreeningService;
  readonly images: RequestImages;
  /** Bulk screening jobs (src/jobs/); undefined without REDIS_URL (their fields answer JOBS_UNAVAILABLE). */
  readonly jobs?: JobStore;
}

const ATTACK_DEFAULT_STEPS: Readonly<Record<AttackName, number>> = {
  fgsm: 1,
  pgd: DEFAULT_PGD_STEPS,
  cw: DEFAULT_CW_STEPS,
  square: DEFAULT_SQUARE_QUERIES,
};

export function errorOf(f: ImageFailure): { code: string; message: string } {
  return { code: f.code, message: f.message };
}

export function checkTop(service: ScreeningService, model: ScreeningModel, top: number | null | undefined): number {
  const k = model.metadata.labels.length;
  if (top == null) return Math.min(service.config.topK, k);
  if (!(Number.isInteger(top) && top >= 1 && top <= k))
    throw badUserInput(`top must be an integer in [1, ${k}], got ${top}`, 'top');
  return top;
}

/** Each result names the model that judged it (the default when the request named none). */
function withModel<T extends object>(results: readonly T[], model: ScreeningModel): Array<T & { model: string }> {
  return results.map((r) => ({ ...r, model: model.id }));
}

/** Counts each image's outcome under the model's id and the field's name. */
export function count(
  service: ScreeningService,
  model: ScreeningModel,
  operation: string,
  results: ReadonlyArray<{ error?: { code: string } }>,
) {
  for (const r of results) service.metrics.images.inc({ model: model.id, operation, outcome: r.error?.code ?? 'ok' });
}

/** Reads one field's images and infers them in one engine call. */
export async function readAndInfer(
  ctx: ApiContext,
  model: ScreeningModel,
  inputs: readonly ImageInput[],
  argumentName: string,
  tokensPerImage: number,
): Promise<{ images: ReadImage[]; outputs: Array<ImageOutput | ImageFailure> }> {
  const images = await ctx.images.read(model, inputs, argumentName, tokensPerImage);
  return { images, outputs: await ctx.images.infer(model, images) };
}

export async function classify(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  top: number | null | undefined,
  modelId?: string | null,
): Promise<ClassifyResult[]> {
  const model = ctx.service.model(modelId);
  const k = checkTop(ctx.service, model, top);
  const { images, outputs } = await readAndInfer(ctx, model, inputs, 'images', TOKENS_PER_IMAGE.classify);
  const labels = model.metadata.labels;
  const results = images.map((img, i): ClassifyResult => {
    const out = outputs[i];
    if (out instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(out) };
    return { index: i, sha256: img.sha256, prediction: prediction(out.probs, labels, k) };
  });
  count(ctx.service, model, 'classify', results);
  // An unscreened prediction is recorded like a verdict, before it leaves (AUDIT_UNAVAILABLE otherwise).
  await recordVerdicts(ctx, model, 'classify', images, results);
  return withModel(results, model);
}

export async function screen(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  options: ScreenOptions | null | undefined,
  modelId?: string | null,
): Promise<ScreenResult[]> {
  const service = ctx.service;
  const model = service.model(modelId);
  // The operator's policy, not the client, sets how loose the screening may be.
  const targetFpr = targetFprFor(model.thresholdPolicy, ctx.principal, options?.targetFpr);
  const top = checkTop(service, model, options?.top);
  const images = await ctx.images.read(model, inputs, 'images', TOKENS_PER_IMAGE.screen);
  const results = await screenImages(ctx, model, images, { ...options, targetFpr, top });
  count(service, model, 'screen', results);
  // Recorded before the response leaves: a verdict the log does not have is not sent (AUDIT_UNAVAILABLE).
  await recordVerdicts(ctx, model, 'screen', images, results);
  return withModel(results, model);
}

/**
 * The verdicts of images already read: every view of every image (alpha-dropped, frames:
 * src/images/decode.ts) in one engine call, each image judged by its most suspicious view. `screen`
 * and a screening job's batch (src/jobs/jobConsumer.ts) both judge here; recording is theirs.
 */
export async function screenImages(
  ctx: Pick<ApiContext, 'service' | 'images'>,
  model: ScreeningModel,
  images: readonly ReadImage[],
  options: Pick<ScreenOptions, 'defend' | 'returnPurifiedImage'> & { targetFpr: number; top: number },
): Promise<ScreenResult[]> {
  const { service } = ctx;
  const { targetFpr, top } = options;
  const outputs = await ctx.images.inferViews(model, images);
  return Promise.all(
    images.map(async (img, i): Promise<ScreenResult> => {
      const viewOutputs = outputs[i];
      if (viewOutputs instanceof ImageFailure) return { index: i, sha256: img.sha256, error: errorOf(viewOutputs) };
      const failed = viewOutputs.find((v) => v.output instanceof ImageFailure);
      if (failed) return { index: i, sha256: img.sha256, error: errorOf(failed.output as ImageFailure) };
      const screened = viewOutputs.map((v) => {
        const out = v.output as ImageOutput;
        return { name: v.name, out, outcome: model.screener.screen(out, { targetFpr, top }) };
      });
      const { chosen, views, flaggedView } = mostSuspiciousView(screened);
      observeScores(service, model, chosen.outcome);
      return {
        index: i,
        sha256: img.sha256,
        prediction: chosen.outcome.prediction,
        detection: chosen.outcome.detection,
        views,
        flaggedView,
        defense: options.defend
          ? await defenseResult(i, img.sha256, chosen.outcome, chosen.out, options.returnPurifiedImage === true, model)
          : undefined,
      };
    }),
  );
}

function observeScores(service: ScreeningService, model: ScreeningModel, outcome: ScreenOutcome): void {
  const d = outcome.detection;
  const m = service.metrics;
  for (const s of d.detectors) m.detectorScore.observe({ model: model.id, detector: s.name }, s.score);
  m.detectorScore.observe({ model: model.id, detector: 'combined' }, d.score);
  if (d.adversarial) m.flagged.inc({ model: model.id });
}

/** The defense at the calibrated radius: computed in the engine's batch already. */
async function defenseResult(
  index: number,
  sha256: string | undefined,
  outcome: ScreenOutcome,
  out: ImageOutput,
  withImage: boolean,
  model: ScreeningModel,
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
      withImage && out.lowPassPixels ? await pngBase64(out.lowPassPixels, model.metadata.inputShape) : undefined,
  };
}

async function pngBase64(pixels: Float32Array, shape: readonly [number, number, number]): Promise<string> {
  return (await encodePng16(pixels, shape)).toString('base64');
}

export async function defend(
  ctx: ApiContext,
  inputs: readonly ImageInput[],
  radius: number | null | undefined,
  modelId?: string | null,
): Promise<DefendResult[]> {
  const service = ctx.service;
  const model = service.model(modelId);
  const calibrated = model.calibration.lowPass;
  if (radius != null && !(radius > 0 && radius <= 1))
    throw badUserInput(`radius must be in (0, 1] cycles per pixel, got ${radius}`, 'radius');
  const r = radius ?? calibrated.radius;
  const kind = calibrated.kind;
  const { images, outputs } = await readAndInfer(ctx, model, inputs, 'images', TOKENS_PER_IMAGE.defend);
  const labels = model.metadata.labels;
  const shape = model.metadata.inputShape;
  const k = checkTop(service, model, undefined);
  // Another radius than the engine's: filter here (a few small DFTs), classify through the engine.
  const filtered = new Map<number, Float32Array>();
  if (r !== calibrated.radius) {
    const good = images.flatMap((img, i) => (outputs[i] instanceof ImageFailure || isFailed(img) ? [] : [i]));
    // On the analysis worker: DFTs of a client's batch must not hold the event loop.
    const pixels = await service.analysis.lowPass(
      good.map((i) => (images[i] as { pixels: Float32Array }).pixels),
      shape,
      r,
      kind,
    );
    good.forEach((i, j) => filtered.set(i, pixels[j]));
  }
  const refiltered = await ctx.images.inferPixels(
    model,
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
  count(service, model, 'defend', results);
  await recordVerdicts(
    ctx,
    model,
    'defend',
    images,
    results.map((r) => ({ ...r, prediction: r.originalPrediction, defense: { prediction: r.prediction } })),
  );
  return withModel(results, model);
}

export async function trajectory(
  ctx: ApiContext,
  input: ImageInput,
  modelId?: string | null,
): Promise<TrajectoryResult> {
  const service = ctx.service;
  const model = service.model(modelId);
  const { images, outputs } = await readAndInfer(ctx, model, [input], 'image', TOKENS_PER_IMAGE.trajectory);
  const out = outputs[0];
  const sha256 = images[0].sha256;
  const result: TrajectoryResult =
    out instanceof ImageFailure
      ? { sha256, error: errorOf(out) }
      : {
          sha256,
          prediction: prediction(out.probs, model.metadata.labels, checkTop(service, model, undefined)),
          steps: model.screener.trajectory(out).map((s) => ({
            ...s,
            nearestLabel: model.metadata.labels[s.nearestClass],
          })),
        };
  count(service, model, 'trajectory', [result]);
  await recordVerdicts(ctx, model, 'trajectory', images, [{ ...result, index: 0 }]);
  return { ...result, model: model.id };
}

/**
 * Grad-CAM maps, one per entry (an image's pixels, its engine output and the class to map), from one
 * worker request, each with its raw values and an overlay PNG of the model's input size.
 */
export async function activationMaps(
  ctx: ApiContext,
  model: ScreeningModel,
  entries: ReadonlyArray<{ pixels: Float32Array; out: ImageOutput; classIndex: number }>,
  layer?: string,
): Promise<{ layer: string; maps: ClassActivationMap[] }> {
  const { labels, inputShape } = model.metadata;
  let maps;
  try {
    maps = await model.engine.explain(
      entries.map((e) => e.pixels),
      Int32Array.from(entries, (e) => e.classIndex),
      { layer, deadline: ctx.deadline },
    );
  } catch (err) {
    if (err instanceof DeadlineExceededError)
      throw deadlineExceeded(ctx.service.config.requestTimeoutMs, 'its Grad-CAM waited for a worker');
    throw err;
  }
  const size = maps.height * maps.width;
  return {
    layer: maps.layer,
    maps: await Promise.all(
      entries.map(async ({ pixels, out, classIndex: k }, i) => {
        const values = maps.maps.subarray(i * size, (i + 1) * size);
        const rgb = overlay(values, [maps.height, maps.width], pixels, inputShape);
        const png = await encodePng16(rgb, [inputShape[0], inputShape[1], 3]);
        return {
          classIndex: k,
          label: labels[k],
          logit: out.logits[k],
          probability: out.probs[k],
          height: maps.height,
          width: maps.width,
          values: Array.from(values),
          overlay: png.toString('base64'),
        };
      }),
    ),
  };
}

/** Classes one `explain` may map besides the predicted one. */
export const MAX_EXPLAIN_CLASSES = 4;

/**
 * Grad-CAM of the image for the predicted class and the classes asked for, at the model's Grad-CAM
 * layer (its deepest spatial activation layer) or the activation layer asked for: one worker
 * request for every map, each with its raw values and an overlay PNG.
 */
export async function explain(
  ctx: ApiContext,
  input: ImageInput,
  classes: readonly number[] | null | undefined,
  layer: string | null | undefined,
  modelId?: string | null,
): Promise<ExplainResult> {
  const service = ctx.service;
  const model = service.model(modelId);
  const { labels, activationLayers } = model.metadata;
  const asked = [...new Set(classes ?? [])];
  const bad = asked.find((k) => !(Number.isInteger(k) && k >= 0 && k < labels.length));
  if (bad !== undefined) throw badUserInput(`classes: ${bad} is not a class index in [0, ${labels.length})`, 'classes');
  if (asked.length > MAX_EXPLAIN_CLASSES)
    throw badUserInput(
      `classes: at most ${MAX_EXPLAIN_CLASSES} besides the predicted one, got ${asked.length}`,
      'classes',
    );
  if (layer != null && !activationLayers.includes(layer))
    throw badUserInput(`layer must be one of the model's activation layers: ${activationLayers.join(', ')}`, 'layer');
  const tokens = TOKENS_PER_IMAGE.explain * (1 + asked.length);
  const { images, outputs } = await readAndInfer(ctx, model, [input], 'image', tokens);
  const [img] = images;
  const out = outputs[0];
  let result: ExplainResult;
  if (out instanceof ImageFailure || isFailed(img)) {
    const failure = out instanceof ImageFailure ? out : (img as { failure: ImageFailure }).failure;
    result = { sha256: img.sha256, error: errorOf(failure) };
  } else {
    const predicted = prediction(out.probs, labels, checkTop(service, model, undefined));
    const mapped = [predicted.classIndex, ...asked.filter((k) => k !== predicted.classIndex)];
    const { layer: used, maps } = await activationMaps(
      ctx,
      model,
      mapped.map((k) => ({ pixels: img.pixels, out, classIndex: k })),
      layer ?? undefined,
    );
    result = { sha256: img.sha256, layer: used, prediction: predicted, maps };
  }
  count(service, model, 'explain', [result]);
  await recordVerdicts(ctx, model, 'explain', images, [{ ...result, index: 0 }]);
  return { ...result, model: model.id };
}

export async function spectrum(ctx: ApiContext, input: ImageInput, modelId?: string | null): Promise<SpectrumResult> {
  const service = ctx.service;
  const model = service.model(modelId);
  const [img] = await ctx.images.read(model, [input], 'image', TOKENS_PER_IMAGE.spectrum);
  let result: SpectrumResult;
  if (isFailed(img)) result = { sha256: img.sha256, error: errorOf(img.failure) };
  else {
    const cutoff = (model.calibration.detectors.highFrequency as { cutoff: number }).cutoff;
    // On the analysis worker (~18 ms of DFT and plotting per 28×28 image): never on the event loop.
    result = {
      sha256: img.sha256,
      ...(await service.analysis.spectrum(img.pixels, model.metadata.inputShape, cutoff)),
    };
  }
  count(service, model, 'spectrum', [result]);
  await recordVerdicts(ctx, model, 'spectrum', [img], [{ index: 0, sha256: result.sha256, error: result.error }]);
  return { ...result, model: model.id };
}

export interface AttackArgs {
  readonly image: ImageInput;
  readonly method: AttackName;
  readonly epsilon: number;
  readonly targetClass?: number | null;
  readonly steps?: number | null;
  readonly seed?: number | null;
  readonly model?: string | null;
}

function checkAttack(service: ScreeningService, model: ScreeningModel, a: AttackArgs): number {
  const numClasses = model.metadata.labels.length;
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
  const model = service.model(a.model);
  const attacks = model.attacks;
  if (!attacks) throw attacksDisabled(service.config.production);
  const steps = checkAttack(service, model, a);
  const base = {
    method: a.method,
    epsilon: a.epsilon,
    targetClass: a.targetClass ?? undefined,
    steps,
    model: model.id,
  };
  const { images, outputs } = await readAndInfer(ctx, model, [a.image], 'image', attackTokens(steps));
  const [img] = images;
  const out = outputs[0];
  if (out instanceof ImageFailure || isFailed(img)) {
    const failure = out instanceof ImageFailure ? out : (img as { failure: ImageFailure }).failure;
    count(service, model, 'attack', [{ error: failure }]);
    return { ...base, sha256: img.sha256, error: errorOf(failure) };
  }
  const labels = model.metadata.labels;
  const original = prediction(out.probs, labels, checkTop(service, model, undefined));
  let adv: Float32Array;
  try {
    adv = await attacks.run({
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
  const shape = model.metadata.inputShape;
  const png = await encodePng16(adv, shape);
  const written = (await decodeImage(png, shape)).pixels;
  const pngSha = createHash('sha256').update(png).digest('hex');
  const [advOut] = await ctx.images.inferPixels(model, [{ key: pngSha, pixels: written }]);
  if (advOut instanceof ImageFailure) return { ...base, sha256: img.sha256, original, error: errorOf(advOut) };
  // At the operator's rate (ADVSIEVE_TARGET_FPR), as `screen` would judge the image by default.
  const outcome = model.screener.screen(advOut, {
    targetFpr: model.defaultTargetFpr,
    top: checkTop(service, model, undefined),
  });
  const adversarial = outcome.prediction;
  let linf = 0;
  let sq = 0;
  written.forEach((v, i) => {
    const d = Math.abs(v - img.pixels[i]);
    linf = Math.max(linf, d);
    sq += d * d;
  });
  count(service, model, 'attack', [{}]);
  const screening = {
    index: 0,
    sha256: pngSha,
    model: model.id,
    prediction: outcome.prediction,
    detection: outcome.detection,
  };
  await recordVerdicts(ctx, model, 'attack', [{ sha256: pngSha, bytes: png.length, data: png }], [screening]);
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
