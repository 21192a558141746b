/**
 * An imported ONNX model (read-model.ts) as a salgrid Graph for one static
 * input shape: every value's shape inferred (infer-shapes.ts), computations
 * from constants and shapes folded into constants (fold-constants.ts), and
 * only the nodes the first output needs kept. What the gradient builder and
 * the engine's taps need — a static shape for every value — then holds for
 * graphs salgrid did not write.
 */
import { UserError } from '../../errors.ts';
import type { ConstantTensor, Graph, GraphNode, ValueInfo } from './graph.ts';
import { constantNodeValue, foldNode } from './fold-constants.ts';
import { inferOutputs } from './infer-shapes.ts';
import type { OnnxModelFile } from './read-model.ts';

export interface StaticGraph {
  readonly graph: Graph;
  /** The graph's input (the file's input, at the static shape). */
  readonly input: string;
  /** The file's first output. */
  readonly output: string;
}

/**
 * The file's graph at `inputShape` (the file's own layout, batch first).
 * `prefix` nodes (already shaped) run before the file's, e.g. a Transpose
 * that makes the file's input from an NHWC one; `prefix.inputs` are then the graph's inputs.
 */
export function staticGraph(file: OnnxModelFile, inputShape: readonly number[], prefix: { inputs: ValueInfo[]; nodes: GraphNode[] } = { inputs: [], nodes: [] }): StaticGraph {
  const declared = file.input.dims;
  if (declared.length !== inputShape.length) {
    throw new UserError(`${file.source}: its input ${file.input.name} has ${declared.length} dimensions, but salgrid feeds images of ${inputShape.length} ([${inputShape.join(', ')}]); give an image classifier.`);
  }
  declared.forEach((dim, i) => {
    if (i > 0 && typeof dim === 'number' && dim !== inputShape[i]) {
      throw new UserError(`${file.source} takes inputs of shape [${declared.join(', ')}], not [${inputShape.join(', ')}]; set the input size (and layout) to what the model was exported for.`);
    }
  });
  const values = new Map<string, ValueInfo>();
  const constants = new Map<string, ConstantTensor>(file.initializers);
  for (const info of prefix.inputs) values.set(info.name, info);
  const input: ValueInfo = { name: file.input.name, dtype: 'float32', shape: inputShape };
  values.set(input.name, input);
  const kept: GraphNode[] = [...prefix.nodes];

  const shapeOf = (name: string): readonly number[] | undefined => values.get(name)?.shape ?? constants.get(name)?.dims;
  for (const node of file.nodes) {
    const where = `${file.source}: node ${node.name} (${node.op})`;
    for (const name of node.inputs) {
      if (name !== '' && shapeOf(name) === undefined) throw new UserError(`${where} reads ${name}, which no earlier node writes; the file is damaged or not in topological order.`);
    }
    if (node.op === 'Constant') {
      const value = constantNodeValue(node);
      if (!value) throw new UserError(`${where} gives its value in a form salgrid does not read; export the model with tensor constants.`);
      constants.set(node.outputs[0], value);
      continue;
    }
    const folded = foldNode(node, (i) => constants.get(node.inputs[i]), (i) => shapeOf(node.inputs[i]));
    if (folded) {
      folded.forEach((tensor, i) => constants.set(node.outputs[i], tensor));
      continue;
    }
    let inferred;
    try {
      inferred = inferOutputs(node, {
        shape: (i) => shapeOf(node.inputs[i]) as readonly number[],
        dtype: (i) => values.get(node.inputs[i])?.dtype ?? constants.get(node.inputs[i])?.dtype ?? 'float32',
        constant: (i) => constants.get(node.inputs[i]),
      });
    } catch (error) {
      throw new UserError(`${where}: ${(error as Error).message}.`);
    }
    if (!inferred) throw new UserError(`${where} is an op salgrid's ONNX import does not know, so it cannot give its values static shapes; export the model with standard image-classifier ops (opset ${file.opset}).`);
    node.outputs.forEach((name, i) => {
      if (name !== '') values.set(name, { name, dtype: inferred[i].dtype, shape: inferred[i].shape });
    });
    kept.push(node);
  }
  const output = file.output.name;
  if (!values.has(output)) {
    throw new UserError(`${file.source}: its output ${output} does not depend on its input; give a classifier whose first output is its class scores.`);
  }

  // Only what the output needs.
  const needed = new Set([output]);
  const nodes: GraphNode[] = [];
  for (let i = kept.length - 1; i >= 0; i--) {
    const node = kept[i];
    if (!node.outputs.some((name) => needed.has(name))) continue;
    nodes.unshift(node);
    for (const name of node.inputs) if (name !== '') needed.add(name);
  }
  const initializers = new Map<string, ConstantTensor>();
  for (const name of needed) {
    const tensor = constants.get(name);
    if (tensor && !values.has(name)) {
      initializers.set(name, tensor);
      values.set(name, { name, dtype: tensor.dtype, shape: tensor.dims });
    }
  }
  const graphInputs = prefix.inputs.length > 0 ? prefix.inputs : [input];
  for (const info of graphInputs) needed.add(info.name);
  for (const name of [...values.keys()]) if (!needed.has(name)) values.delete(name);
  const graph: Graph = { name: file.source, inputs: graphInputs, outputs: [values.get(output) as ValueInfo], nodes, initializers, values };
  return { graph, input: graphInputs[0].name, output };
}
