/**
 * metadata.json for a model `train()` made: the serving graph's layer names, what its probabilities
 * are, and — for a variant of the causes study — the variant, so that anything holding the engine's
 * logits can compute what the model's head means (e.g. a PNN's p(none), noneProbabilityOf).
 */
import { FASHION_LABELS } from '../data/fashionMnist';
import type { ModelMetadata } from '../engine/modelStore';
import { activationLayersOf, isDefaultVariant } from './modelVariant';
import type { TrainResult } from './trainer';

export function trainedModelMetadata(
  id: string,
  result: Pick<TrainResult, 'model' | 'variant' | 'loss' | 'probabilities' | 'pnnBackground'>,
  extra: { labels?: readonly string[]; training?: Record<string, unknown> } = {},
): ModelMetadata {
  const v = result.variant;
  const [, h, w, c] = result.model.inputs[0].shape as number[];
  const classes = result.model.getLayer('logits').getConfig().units as number;
  const labels =
    extra.labels ??
    (classes === FASHION_LABELS.length ? FASHION_LABELS : Array.from({ length: classes }, (_, k) => `class ${k}`));
  if (labels.length !== classes) throw new RangeError(`${labels.length} labels for a model of ${classes} classes`);
  const plain = isDefaultVariant(v) && result.loss === 'softmax';
  const bg = result.pnnBackground;
  return {
    id,
    labels: [...labels],
    inputShape: [h, w, c],
    outputLayer: 'probs',
    logitsLayer: 'logits',
    activationLayers: activationLayersOf(v),
    // The default model's metadata stays as it was: no field a reader must know.
    ...(plain
      ? {}
      : {
          probabilities: result.probabilities,
          variant: {
            arch: v.arch,
            l2norm: v.l2norm,
            ...(v.l2norm === 'none' || v.head === 'pnn' ? {} : { l2Scale: v.l2Scale }),
            head: v.head,
            loss: result.loss,
            ...(bg
              ? {
                  pnn: {
                    prototypesPerClass: v.prototypesPerClass,
                    sigma: bg.sigma,
                    logBackground: bg.logBackground,
                    backgroundQuantile: bg.quantile,
                  },
                }
              : {}),
          },
        }),
    ...(extra.training ? { training: extra.training } : {}),
  };
}
