/**
 * Which tfjs kernels each TensorFlow op of a graph model needs, as tfjs-converter 4.22's op
 * executors (tfjs-converter/src/operations/executors/*) call them, for the ops image classifiers
 * are made of. A graph's op whose kernel the backend lacks is listed before anything is loaded; an
 * op missing here is checked by its own name as a kernel name (which most TF ops share with theirs),
 * and the import's dry run (forward and input gradient) is the final word.
 */
import * as tf from '@tensorflow/tfjs';
import type { GraphNodeJson } from '../engine/graphTopology';

const SAME_NAME = [
  'Abs', 'Acos', 'Asin', 'Atan', 'Ceil', 'Cos', 'Elu', 'Erf', 'Exp', 'Expm1', 'Floor', 'IsNan', 'LeakyRelu', 'Log',
  'Log1p', 'Neg', 'Prelu', 'Reciprocal', 'Relu', 'Relu6', 'Round', 'Rsqrt', 'Selu', 'Sigmoid', 'Sign', 'Sin',
  'Softplus', 'Sqrt', 'Square', 'SquaredDifference', 'Tanh', 'Minimum', 'Maximum', 'Pow', 'FloorDiv', 'AddN',
  'Conv2D', 'Conv3D', 'AvgPool', 'MaxPool', 'AvgPool3D', 'MaxPool3D', 'MaxPoolWithArgmax', 'Dilation2D',
  'Conv2DBackpropInput', 'Softmax', 'LRN', 'Mean', 'Sum', 'Max', 'Min', 'Prod', 'ArgMax', 'ArgMin',
  'All', 'Any', 'Cumsum', 'Cast', 'MirrorPad', 'SpaceToBatchND', 'BatchToSpaceND', 'DepthToSpace', 'Pack',
  'Unpack', 'Slice', 'StridedSlice', 'SplitV', 'Tile', 'Fill', 'Transpose', 'ResizeBilinear',
  'ResizeNearestNeighbor', 'CropAndResize', 'Equal', 'NotEqual', 'Greater', 'GreaterEqual', 'Less', 'LessEqual',
  'LogicalAnd', 'LogicalNot', 'LogicalOr', 'OnesLike', 'ZerosLike', 'Range', 'Einsum', 'OneHot', 'ClipByValue',
  'Identity', 'Reshape', 'Sub', 'RealDiv', 'Mod', 'BatchMatMul', 'FFT', 'IFFT',
];

/** TF op → the kernels it runs (none: the executor handles it without a kernel). */
export const TF_OP_KERNELS: Readonly<Record<string, readonly string[]>> = {
  ...Object.fromEntries(SAME_NAME.map((k) => [k, [k]])),
  Placeholder: [],
  PlaceholderWithDefault: [],
  Const: [],
  NoOp: [],
  StopGradient: ['Identity'],
  IdentityN: ['Identity'],
  Snapshot: ['Identity'],
  Shape: [],
  // tf.logSoftmax is composed of other ops, not a kernel of its own.
  LogSoftmax: ['Max', 'Sub', 'Exp', 'Sum', 'Log'],
  Add: ['Add'],
  AddV2: ['Add'],
  BiasAdd: ['Add'],
  Mul: ['Multiply'],
  Div: ['RealDiv'],
  FloorMod: ['Mod'],
  _FusedConv2D: ['FusedConv2D'],
  DepthwiseConv2d: ['DepthwiseConv2dNative'],
  DepthwiseConv2dNative: ['DepthwiseConv2dNative'],
  FusedDepthwiseConv2dNative: ['FusedDepthwiseConv2D'],
  Conv1D: ['Conv2D', 'Reshape'],
  MatMul: ['BatchMatMul'],
  BatchMatMulV2: ['BatchMatMul'],
  _FusedMatMul: ['_FusedMatMul'],
  FusedBatchNorm: ['FusedBatchNorm'],
  FusedBatchNormV2: ['FusedBatchNorm'],
  FusedBatchNormV3: ['FusedBatchNorm'],
  Squeeze: ['Reshape'],
  ExpandDims: ['Reshape'],
  Pad: ['PadV2'],
  PadV2: ['PadV2'],
  Concat: ['Concat'],
  ConcatV2: ['Concat'],
  Split: ['SplitV'],
  Gather: ['GatherV2'],
  GatherV2: ['GatherV2'],
  Reverse: ['Reverse'],
  ReverseV2: ['Reverse'],
  Select: ['Select'],
  SelectV2: ['Select'],
};

/** One TF op the backend cannot run: the kernels it lacks, the nodes that use it. */
export interface UnsupportedOp {
  readonly op: string;
  readonly missingKernels: readonly string[];
  readonly nodes: readonly string[];
}

/** Every op of the graph whose kernels `backend` lacks, each once, in the order they first occur. */
export function unsupportedOps(nodes: readonly GraphNodeJson[], backend: string): UnsupportedOp[] {
  const byOp = new Map<string, UnsupportedOp & { nodes: string[] }>();
  for (const node of nodes) {
    const seen = byOp.get(node.op);
    if (seen) {
      seen.nodes.push(node.name);
      continue;
    }
    const kernels = TF_OP_KERNELS[node.op] ?? [node.op];
    const missingKernels = kernels.filter((k) => !tf.getKernel(k, backend));
    if (missingKernels.length) byOp.set(node.op, { op: node.op, missingKernels, nodes: [node.name] });
  }
  return [...byOp.values()];
}

/** "Einsum (kernel Einsum; node a/b, c), Foo (…)": what the refusal lists. */
export function describeUnsupported(ops: readonly UnsupportedOp[]): string {
  return ops
    .map((o) => {
      const known = TF_OP_KERNELS[o.op] !== undefined;
      const kernels = known ? `kernel ${o.missingKernels.join(', ')}` : 'unknown to this check, and no kernel of that name';
      const shown = o.nodes.slice(0, 3).join(', ') + (o.nodes.length > 3 ? `, … ${o.nodes.length} nodes` : '');
      return `${o.op} (${kernels}; node ${shown})`;
    })
    .join(', ');
}
