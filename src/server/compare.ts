/**
 * `compare(clean, suspect)`: an original and a suspected adversarial version of it, side by side —
 * the perturbation (amplified), its spectrum with the sieve's cut-off against the calibration's
 * mean spectrum of the class it pushes towards, the promotion–suppression typing of the
 * prediction's change on the logits and per activation layer (src/evaluation/analysis.ts), and
 * each image's Grad-CAM and feature trajectory. Both images are decoded to the model's input; the
 * perturbation is their difference there.
 */
import { encodePng16 } from '../images/encode';
import type { ImageOutput } from '../engine/model';
import { classSpectrumProblem } from '../calibration/classSpectra';
import type { ActivationDistanceState } from '../detectors/activationDistance';
import { layerPromotionSuppression, promotionSuppression, spectrumSimilarity } from '../evaluation/analysis';
import { heatmapGrid } from '../report/plots';
import { prediction } from '../screening/screener';
import type { ClassSpectrumComparison, CompareResult, ComparedImage } from '../schema/compare.type';
import type { ImageInput } from '../schema/image.input';
import { recordVerdicts } from '../audit/records';
import { ImageFailure } from '../request/errors';
import { TOKENS_PER_IMAGE } from '../request/fieldCosts';
import { activationMaps, ApiContext, checkTop, count, errorOf, readAndInfer } from './operations';
import type { ScreeningModel } from './screeningModel';
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

/**
 * The perturbation's radial log-power profile against the calibration's clean mean of class `k`:
 * their correlation, the class's rank among all classes by it, and the class's mean spectrum drawn.
 * A calibration without the class's spectrum answers why, not an error.
 */
async function classSpectrumComparison(
  model: ScreeningModel,
  k: number,
  perturbationProfile: readonly number[],
  cutoff: number,
): Promise<ClassSpectrumComparison> {
  const { labels, inputShape } = model.metadata;
  const spectra = model.calibration.classSpectra;
  const usable = (j: number) => classSpectrumProblem(spectra, j, inputShape, perturbationProfile.length);
  const base = { classIndex: k, label: labels[k] };
  const problem = usable(k);
  if (problem !== undefined || spectra === undefined) return { ...base, available: false, reason: problem };
  const profiles = labels.map((_, j) => (usable(j) === undefined ? spectra.radial[j] : undefined));
  const { similarity, rank } = spectrumSimilarity(perturbationProfile, profiles, k);
  const png = await heatmapGrid(
    `mean log10 power spectrum, class ${labels[k]}`,
    [{ label: labels[k], width: spectra.mapWidth, height: spectra.mapHeight, values: spectra.maps[k] }],
    { shift: true, ring: cutoff },
  );
  return {
    ...base,
    available: true,
    images: spectra.images[k],
    radialLogPower: spectra.radial[k],
    similarity,
    rank,
    classesRanked: profiles.filter((p) => p !== undefined).length,
    logMagnitudePng: png.toString('base64'),
  };
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
    const spectrum = await service.analysis.spectrum(delta, inputShape, cutoff);
    result.perturbationSpectrum = { model: model.id, ...spectrum };
    result.classSpectrum = await classSpectrumComparison(model, to, spectrum.radialLogPower ?? [], cutoff);
    if (from !== to) {
      const ps = promotionSuppression(c.out.logits, s.out.logits, from, to);
      const { layers, expectations } = model.calibration.detectors.activationDistance as ActivationDistanceState;
      result.promotionSuppression = {
        ...ps,
        originClass: from,
        targetClass: to,
        layers: layers.map((layer) =>
          layerPromotionSuppression(
            layer,
            expectations[layer],
            c.out.activations[layer],
            s.out.activations[layer],
            from,
            to,
          ),
        ),
      };
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
