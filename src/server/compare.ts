/**
 * `compare(clean, suspect)`: an original and a suspected adversarial version of it, side by side —
 * the perturbation (amplified), its spectrum with the sieve's cut-off, the promotion–suppression
 * typing of the prediction's change (src/evaluation/analysis.ts), and each image's Grad-CAM and
 * feature trajectory. Both images are decoded to the model's input; the perturbation is their
 * difference there.
 */
import { encodePng16 } from '../images/encode';
import type { ImageOutput } from '../engine/model';
import { promotionSuppression } from '../evaluation/analysis';
import { prediction } from '../screening/screener';
import type { CompareResult, ComparedImage } from '../schema/compare.type';
import type { ImageInput } from '../schema/image.input';
import { recordVerdicts } from '../audit/records';
import { ImageFailure } from '../request/errors';
import { TOKENS_PER_IMAGE } from '../request/fieldCosts';
import { activationMaps, ApiContext, checkTop, count, errorOf, readAndInfer } from './operations';
import { isFailed, ReadImage } from './requestImages';

type Read = { img: ReadImage; out: ImageOutput | ImageFailure };

function failureOf({ img, out }: Read): ImageFailure | undefined {
  if (out instanceof ImageFailure) return out;
  return isFailed(img) ? img.failure : undefined;
}

/** The perturbation's size, and an image of it amplified so that its largest value reaches white or black. */
async function perturbationOf(clean: Float32Array, suspect: Float32Array, shape: readonly [number, number, number]) {
  const delta = suspect.map((v, i) => v - clean[i]);
  let linf = 0;
  let sq = 0;
  for (const d of delta) {
    linf = Math.max(linf, Math.abs(d));
    sq += d * d;
  }
  const amplification = linf > 0 ? 0.5 / linf : 1;
  const png = await encodePng16(
    delta.map((d) => 0.5 + d * amplification),
    shape,
  );
  return { delta, perturbation: { linf, l2: Math.sqrt(sq), amplification, image: png.toString('base64') } };
}

export async function compare(
  ctx: ApiContext,
  cleanInput: ImageInput,
  suspectInput: ImageInput,
  modelId?: string | null,
): Promise<CompareResult> {
  const service = ctx.service;
  const model = service.model(modelId);
  const { labels, inputShape } = model.metadata;
  const tokens = TOKENS_PER_IMAGE.compare;
  const [clean, suspect] = await Promise.all(
    (
      [
        [cleanInput, 'clean'],
        [suspectInput, 'suspect'],
      ] as const
    ).map(async ([input, name]): Promise<Read> => {
      const { images, outputs } = await readAndInfer(ctx, model, [input], name, tokens);
      return { img: images[0], out: outputs[0] };
    }),
  );
  const top = checkTop(service, model, undefined);
  const summary = (r: Read): ComparedImage => {
    const failure = failureOf(r);
    if (failure) return { sha256: r.img.sha256, error: errorOf(failure) };
    const out = r.out as ImageOutput;
    return {
      sha256: r.img.sha256,
      prediction: prediction(out.probs, labels, top),
      trajectory: model.screener.trajectory(out).map((s) => ({ ...s, nearestLabel: labels[s.nearestClass] })),
    };
  };
  const result: CompareResult = { model: model.id, clean: summary(clean), suspect: summary(suspect) };
  if (!result.clean.error && !result.suspect.error) {
    const [c, s] = [clean, suspect].map((r) => ({
      pixels: (r.img as { pixels: Float32Array }).pixels,
      out: r.out as ImageOutput,
    }));
    const [from, to] = [result.clean.prediction!.classIndex, result.suspect.prediction!.classIndex];
    const { maps } = await activationMaps(ctx, model, [
      { ...c, classIndex: from },
      { ...s, classIndex: to },
    ]);
    [result.clean.cam, result.suspect.cam] = maps;
    const { delta, perturbation } = await perturbationOf(c.pixels, s.pixels, inputShape);
    result.perturbation = perturbation;
    const cutoff = (model.calibration.detectors.highFrequency as { cutoff: number }).cutoff;
    result.perturbationSpectrum = { model: model.id, ...(await service.analysis.spectrum(delta, inputShape, cutoff)) };
    if (from !== to) {
      const ps = promotionSuppression(c.out.logits, s.out.logits, from, to);
      result.promotionSuppression = { ...ps, originClass: from, targetClass: to };
    }
  }
  count(service, model, 'compare', [result.clean, result.suspect]);
  await recordVerdicts(
    ctx,
    model,
    'compare',
    [clean.img, suspect.img],
    [
      { ...result.clean, index: 0 },
      { ...result.suspect, index: 1 },
    ],
  );
  return result;
}
