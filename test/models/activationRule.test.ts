/** The activation-layer rule of `advsieve import` (src/models/activationRule.ts) on made-up block lists. */
import { BlockOutput, chooseActivationLayers, spreadBlocks } from '../../src/models/activationRule';

const block = (name: string, kind: BlockOutput['kind'], size: number): BlockOutput => ({ name, kind, height: size, width: size });

test("MobileNetV2's residual additions (56, 28, 14, 7 px): the last at each of the first three resolutions", () => {
  const adds = [
    block('block_2_add', 'add', 56),
    block('block_4_add', 'add', 28),
    block('block_5_add', 'add', 28),
    block('block_7_add', 'add', 14),
    block('block_9_add', 'add', 14),
    block('block_12_add', 'add', 14),
    block('block_14_add', 'add', 7),
    block('block_15_add', 'add', 7),
  ];
  const convs = [block('Conv1', 'conv', 112), block('Conv_1', 'conv', 7)];
  expect(spreadBlocks([...convs, ...adds])).toEqual(['block_2_add', 'block_5_add', 'block_12_add']);
  expect(chooseActivationLayers(adds, 'dense_2', 'dense_3')).toEqual([
    'block_2_add',
    'block_5_add',
    'block_12_add',
    'dense_2',
    'dense_3',
  ]);
});

test('six resolutions: the deepest dropped, then the first, middle and last of the other five', () => {
  const convs = [64, 32, 16, 8, 4, 2].map((s) => block(`conv${s}`, 'conv', s));
  expect(spreadBlocks(convs)).toEqual(['conv64', 'conv16', 'conv4']);
});

test('concatenations before convolutions; 1×1 outputs are not spatial; nothing spatial gives only the head', () => {
  const blocks = [block('c1', 'conv', 8), block('mixed0', 'concat', 8), block('mixed1', 'concat', 4), block('top', 'concat', 1)];
  expect(spreadBlocks(blocks)).toEqual(['mixed0', 'mixed1']);
  expect(chooseActivationLayers([block('gap', 'conv', 1)], undefined, 'logits')).toEqual(['logits']);
  expect(chooseActivationLayers([], 'logits', 'logits')).toEqual(['logits']);
});
