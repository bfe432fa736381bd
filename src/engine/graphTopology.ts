/**
 * The GraphDef JSON of a tfjs graph model (`format: 'graph-model'`, what tensorflowjs_converter
 * writes from a SavedModel, a TF Hub module or ONNX via onnx2tf): its nodes, their inputs and the
 * input placeholders' shapes, read without loading the weights.
 */

export interface GraphNodeJson {
  readonly name: string;
  readonly op: string;
  readonly input?: readonly string[];
  readonly attr?: Readonly<Record<string, unknown>>;
}

/** The nodes of `topology` (a GraphDef: `{ node: [...] }`), or undefined when it is not one. */
export function graphNodes(topology: unknown): GraphNodeJson[] | undefined {
  const nodes = (topology as { node?: unknown } | null)?.node;
  if (!Array.isArray(nodes)) return undefined;
  const ok = nodes.every((n) => typeof n?.name === 'string' && typeof n.op === 'string');
  return ok ? (nodes as GraphNodeJson[]) : undefined;
}

/**
 * A node's data inputs as node names: control inputs (`^name`) dropped, output indices (`name:1`)
 * cut off. The graph models converted from classifiers have one output per node.
 */
export function dataInputs(node: GraphNodeJson): string[] {
  return (node.input ?? []).filter((i) => !i.startsWith('^')).map((i) => i.replace(/:\d+$/, ''));
}

/** The input placeholders (Placeholder nodes). */
export function graphInputs(nodes: readonly GraphNodeJson[]): GraphNodeJson[] {
  return nodes.filter((n) => n.op === 'Placeholder');
}

/** A placeholder's shape, unknown sizes (-1) as null; undefined when its rank is unknown. */
export function placeholderShape(node: GraphNodeJson): Array<number | null> | undefined {
  const shape = (node.attr?.shape as { shape?: { dim?: Array<{ size?: string | number }>; unknownRank?: boolean } })
    ?.shape;
  if (!shape || shape.unknownRank) return undefined;
  return (shape.dim ?? []).map((d) => {
    const size = Number(d.size ?? -1);
    return size < 0 ? null : size;
  });
}

/** A placeholder's dtype as TensorFlow names it ('DT_FLOAT', …). */
export function placeholderDtype(node: GraphNodeJson): string | undefined {
  return (node.attr?.dtype as { type?: string } | undefined)?.type;
}
