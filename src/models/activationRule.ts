/**
 * Which activations an imported model's detectors read, chosen by one rule for both formats (the
 * one docs/byom.md states):
 *
 * 1. Block outputs with a spatial output (H×W > 1): the residual additions if the model has any
 *    (ResNet, MobileNetV2), else its concatenations (Inception, DenseNet), else its convolutions
 *    (a plain CNN).
 * 2. The last of them at each spatial resolution, in depth order: where a stage ends.
 * 3. With more than three resolutions the deepest is dropped (the penultimate features summarise
 *    it), and of the rest the first, the middle and the last are kept: three layers spread across
 *    depth.
 * 4. Then the penultimate features (the input of the logits layer) and the logits themselves.
 *
 * On nsfwjs' MobileNetV2 (residual additions at 56, 28, 14 and 7 px) the rule picks the block
 * outputs chosen there by hand: block_2_add, block_5_add, block_12_add.
 */

export type BlockKind = 'add' | 'concat' | 'conv';

export interface BlockOutput {
  readonly name: string;
  readonly kind: BlockKind;
  /** Output height and width. */
  readonly height: number;
  readonly width: number;
}

/** Spatial block outputs spread across depth (rules 1-3); `blocks` in depth order. */
export function spreadBlocks(blocks: readonly BlockOutput[]): string[] {
  const spatial = blocks.filter((b) => b.height * b.width > 1);
  const kind = (['add', 'concat', 'conv'] as const).find((k) => spatial.some((b) => b.kind === k));
  const lastAt = new Map<string, BlockOutput>();
  for (const b of spatial.filter((b) => b.kind === kind)) {
    const key = `${b.height}x${b.width}`;
    lastAt.delete(key); // re-inserted: the Map keeps the order of each resolution's last block
    lastAt.set(key, b);
  }
  let stages = [...lastAt.values()].map((b) => b.name);
  if (stages.length > 3) stages = stages.slice(0, -1);
  if (stages.length > 3) stages = [0, 0.5, 1].map((q) => stages[Math.round(q * (stages.length - 1))]);
  return stages;
}

/** The whole rule: spread block outputs, the penultimate features, the logits; each once. */
export function chooseActivationLayers(
  blocks: readonly BlockOutput[],
  penultimate: string | undefined,
  logits: string,
): string[] {
  return [...new Set([...spreadBlocks(blocks), ...(penultimate ? [penultimate] : []), logits])];
}
