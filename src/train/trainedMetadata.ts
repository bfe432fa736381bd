/**
 * metadata.json for a model `train()` made: the serving graph's layer names, what its probabilities
 * are, and — for a variant of the causes study — the variant, so that anything holding the engine's
 * logits can compute what the model's head means (e.g. a PNN's p(none), noneProbabilityOf).
 */
import { FASHION_LABELS } from '../data/fashionMnist';
import type { ModelMetadata } from '../engine/modelStore';
import { INPUT_SHAPE } from './fashionCnn';
import { activationLayersOf, isDefaultVariant } from './modelVariant';
import type { TrainResult } from './trainer';

export function trainedModelMetadata(
  id: string,
  result: Pick<TrainResult, 'variant' | 'loss' | 'probabilities' | 'pnnBackground'>,
  extra: { labels?: readonly string[]; training?: Record<string, unknown> } = {},
): ModelMetadata {
  const v = result.variant;
  const plain = isDefaultVariant(v) && result.loss === 'softmax';
  const bg = result.pnnBackground;
  return {
    id,
    labels: [...(extra.labels ?? FASHION_LABELS)],
    inputShape: [...INPUT_SHAPE],
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
