/**
 * A tfjs layers-model as an ONNX model file for other tools (ONNX Runtime,
 * netron, salgrid's `onnx` architecture), in the form `torch.onnx.export`
 * gives a torchvision classifier:
 *
 * - the graph the onnx engine runs (export.ts, final softmax left out),
 *   weights named by torch state-dict keys (`features.0.0.weight`);
 * - input `input` NCHW [n, channels, height, width] and output `logits`
 *   [n, classes], `n` a symbolic batch; no value_info for the values inside;
 * - nodes named by torch module scope: the nodes of module
 *   `features.12.conv` are `/features/features.12/features.12.conv/Conv`…,
 *   so that the module `features.12` on re-import (imported-model.ts: the
 *   output of the last node in its scope) is what the layer `features_12`
 *   (or the last layer inside it, as layerForModule picks) is on the engine;
 * - opset 17, IR 8, producer salgrid (serialize.ts).
 *
 * The engine's graph takes NHWC and turns it NCHW with one Transpose; here
 * the input is NCHW, so that Transpose goes and its readers read the input.
 * serializeGraph declares the batch dimension of the input and output
 * symbolic, once checkBatchFree has found nothing in the graph that fixes it.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.ts';
import { torchName } from '../torch-weights.ts';
import { exportLayersModel } from './export.ts';
import type { Attribute, ConstantTensor, Graph, GraphNode, ValueInfo } from './graph.ts';
import { IR_VERSION, OPSET_VERSION, serializeGraph } from './serialize.ts';


export const ONNX_INPUT = 'input';
export const ONNX_OUTPUT = 'logits';
/** The symbolic batch dimension of the input and output (dim_param). */
export const ONNX_BATCH = 'n';

export interface OnnxModelBytes {
  /** The .onnx file's contents. */
  readonly bytes: Uint8Array;
  /** The input's [channels, height, width] (NCHW after the batch). */
  readonly input: readonly [number, number, number];
  readonly classes: number;
  readonly nodes: number;
  /** Values in the weights and other constants. */
  readonly constants: number;
  readonly opset: number;
  readonly irVersion: number;
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

/** The ops of export.ts, none of which fixes a batch size unless its operands do (checked in checkBatchFree). */
const OPS = new Set([
  'Transpose', 'Conv', 'BatchNormalization', 'Relu', 'Clip', 'Sigmoid', 'Tanh', 'Elu', 'Softplus', 'MaxPool', 'AveragePool',
  'GlobalAveragePool', 'Pad', 'Add', 'Sub', 'Mul', 'Div', 'Concat', 'Flatten', 'Reshape', 'MatMul', 'Gemm', 'Identity', 'Softmax',
]);
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div']);

const samePerm = (attribute: Attribute | undefined, perm: readonly number[]): boolean =>
  attribute !== undefined && 'ints' in attribute && attribute.ints.length === perm.length && attribute.ints.every((v, i) => v === perm[i]);

/** torch.onnx.export's scope of a layer: every enclosing module's full dotted path, outermost first. */
export function moduleScopes(layerPath: string): string[] {
  const parts = layerPath.split('/').map(torchName).join('.').split('.');
  return parts.map((_, i) => parts.slice(0, i + 1).join('.'));
}

/**
 * Checks that nothing in the graph fixes the batch size, so that a symbolic
 * batch is true: Reshape targets leave the batch to 0 or -1, Flatten keeps
 * axis 0, and constants broadcast over it (leading 1 where they have the
 * operands' rank). Throws on an op it does not know to be batch-free.
 */
export function checkBatchFree(graph: Graph): void {
  const fail = (node: GraphNode, why: string) => {
    throw new Error(`ONNX file export: node ${node.name ?? node.op} (${node.op}) ${why}, so the exported batch would not be dynamic`);
  };
  for (const node of graph.nodes) {
    if (!OPS.has(node.op)) fail(node, 'is outside the ops known to leave the batch free');
    if (node.op === 'Reshape') {
      const target = graph.initializers.get(node.inputs[1]);
      if (!target) fail(node, 'takes a computed shape');
      else if (![0, -1].includes(Number(target.data[0]))) fail(node, `reshapes to a batch of ${Number(target.data[0])}`);
    }
    if (node.op === 'Flatten') {
      const axis = node.attributes?.axis;
      if (axis === undefined || !('int' in axis) || axis.int === 0) fail(node, 'flattens the batch axis');
    }
    if (BROADCASTING.has(node.op)) {
      const rank = graph.values.get(node.outputs[0])?.shape.length ?? 0;
      for (const operand of node.inputs) {
        const constant = graph.initializers.get(operand);
        if (constant && constant.dims.length === rank && constant.dims[0] !== 1) fail(node, `reads a constant of ${constant.dims[0]} rows`);
      }
    }
  }
}

/** Names not in `taken`: `base`, else `base_1`, `base_2`… */
function freshName(base: string, taken: Set<string>): string {
  let name = base;
  for (let i = 1; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * The engine's forward graph of `model` as `torch.onnx.export` would write
 * the torch model: NCHW input `input`, output `logits`, scoped node names.
 * The shapes it records keep batch 1; the file declares the batch symbolic.
 */
export function exportTorchStyleGraph(model: tf.LayersModel): Graph {
  const shape = model.inputs[0]?.shape ?? [];
  if (model.inputs.length !== 1 || shape.length !== 4) {
    throw new UserError(`Model ${model.name} does not take one batch of images [n, height, width, channels] (its inputs: ${model.inputs.map((input) => `[${input.shape.map((s) => s ?? '?').join(', ')}]`).join(', ')}); an ONNX file is written for image classifiers only.`);
  }
  const exported = exportLayersModel(model, { batch: 1, leaveOutSoftmax: true });
  const source = exported.graph;
  const nodes: GraphNode[] = [];
  const layerOf: (string | undefined)[] = [];
  const renames = new Map<string, string>();
  const taken = new Set(source.values.keys());

  // The input: NCHW, read where the engine's NHWC→NCHW Transpose was read (or through a Transpose to NHWC).
  const oldInput = source.inputs[0];
  const readers = source.nodes.filter((node) => node.inputs.includes(exported.input));
  const bypassed = readers.length === 1 && readers[0].op === 'Transpose' && samePerm(readers[0].attributes?.perm, TO_NCHW) ? readers[0] : undefined;
  const [, height, width, channels] = oldInput.shape;
  const input: ValueInfo = { name: ONNX_INPUT, dtype: 'float32', shape: [oldInput.shape[0], channels, height, width] };
  const added: ValueInfo[] = [input];
  const dropped = new Set([oldInput.name]);
  taken.delete(oldInput.name);
  if (taken.has(ONNX_INPUT)) renames.set(ONNX_INPUT, freshName(ONNX_INPUT, taken));
  taken.add(ONNX_INPUT);
  if (bypassed) {
    renames.set(bypassed.outputs[0], ONNX_INPUT);
    dropped.add(bypassed.outputs[0]);
  } else {
    const nhwc = freshName(`${ONNX_INPUT}:nhwc`, taken);
    renames.set(oldInput.name, nhwc);
    added.push({ ...oldInput, name: nhwc });
    nodes.push({ op: 'Transpose', inputs: [ONNX_INPUT], outputs: [nhwc], attributes: { perm: { ints: TO_NHWC } } });
    layerOf.push(undefined);
  }

  // The output: `logits` (a value so named elsewhere steps aside).
  if (exported.output !== ONNX_OUTPUT) {
    if (taken.has(ONNX_OUTPUT)) renames.set(ONNX_OUTPUT, freshName(ONNX_OUTPUT, taken));
    renames.set(exported.output, ONNX_OUTPUT);
  }
  const rename = (name: string) => renames.get(name) ?? name;
  const values = new Map<string, ValueInfo>();
  for (const [name, info] of source.values) if (!dropped.has(name)) values.set(rename(name), { ...info, name: rename(name) });
  for (const info of added) values.set(info.name, info);

  source.nodes.forEach((node, i) => {
    if (node === bypassed) return;
    nodes.push({ ...node, inputs: node.inputs.map(rename), outputs: node.outputs.map(rename) });
    layerOf.push(exported.nodeLayers[i]);
  });

  // Node names as torch.onnx.export writes them: `/scope/…/scope/Op`, `_1`, `_2`… on repeats. A layer named
  // by a module path is that module's output, so a layer after it is outside that module (DenseNet's
  // features.norm5.relu, applied functionally after features.norm5, is no part of features.norm5).
  const names = new Set<string>();
  const done = new Set<string>();
  const named = nodes.map((node, i) => {
    const layer = layerOf[i];
    const previous = layerOf[i - 1];
    if (previous !== undefined && previous !== layer) done.add(moduleScopes(previous).at(-1) as string);
    const scopes = layer === undefined ? [] : moduleScopes(layer).filter((scope, k, all) => k === all.length - 1 || !done.has(scope));
    const base = `/${[...scopes, node.op].join('/')}`;
    let name = base;
    for (let k = 1; names.has(name); k++) name = `${base}_${k}`;
    names.add(name);
    return { ...node, name };
  });

  const initializers = new Map<string, ConstantTensor>();
  for (const [name, tensor] of source.initializers) initializers.set(rename(name), tensor);
  const output = values.get(ONNX_OUTPUT) as ValueInfo;
  if (output.shape.length !== 2) throw new Error(`ONNX file export: the class scores are [${output.shape.join(', ')}], not [n, classes]`);
  const graph: Graph = { name: source.name, inputs: [input], outputs: [output], nodes: named, initializers, values };
  checkBatchFree(graph);
  return graph;
}

/** `model` as the bytes of an .onnx file (see the top of this file). */
export function exportOnnxFile(model: tf.LayersModel): OnnxModelBytes {
  const graph = exportTorchStyleGraph(model);
  const bytes = serializeGraph(graph, { valueInfo: false, batchName: ONNX_BATCH });
  const [, channels, height, width] = graph.inputs[0].shape;
  let constants = 0;
  for (const tensor of graph.initializers.values()) constants += tensor.data.length;
  return { bytes, input: [channels, height, width], classes: graph.outputs[0].shape[1], nodes: graph.nodes.length, constants, opset: OPSET_VERSION, irVersion: IR_VERSION };
}
