/**
 * Gradient graphs: a forward graph extended with its backward pass, by
 * reverse-mode differentiation over its ops, emitted as standard ONNX ops.
 * Weights are constants (no weight gradient is ever built). The score is
 * Σ score·targets over a new graph input `targets` [n, classes] (a one-hot
 * mask of each image's target class), so the backward pass starts from the
 * mask itself.
 *
 * The backward pass runs only through nodes the score depends on that lie
 * downstream of a value asked for (a layer, or the input): nothing upstream
 * of the earliest one is differentiated, and the forward keeps only what the
 * outputs and the backward rules read. Where a value feeds several nodes,
 * its gradient is the Sum of their contributions.
 *
 * Rules: `plain`; `guided` and `deeplift` replace some ops' backward rules
 * (backward-modified.ts). Forward from a layer (AblationCAM) is in
 * forward-from-value.ts.
 */
import { UserError } from '../../errors.ts';
import { BackwardContext, readsEveryOutput, undifferentiable, type BackwardRule, type Gradient, type GradientRule } from './backward-context.ts';
import { batchNormBackward, convBackward, convTransposeBackward, instanceNormBackward, layerNormBackward } from './backward-conv.ts';
import {
  absBackward, addBackward, castBackward, celuBackward, clipBackward, divBackward, eluBackward, erfBackward, expBackward,
  hardSigmoidBackward, hardSwishBackward, leakyReluBackward, logBackward, logSoftmaxBackward, maxMinBackward, meanBackward, mulBackward,
  negBackward, powBackward, preluBackward, reciprocalBackward, reluBackward, seluBackward, sigmoidBackward, softmaxBackward,
  softplusBackward, softsignBackward, sqrtBackward, subBackward, tanhBackward, whereBackward,
} from './backward-elementwise.ts';
import { modifiedRules } from './backward-modified.ts';
import {
  averagePoolBackward, globalAveragePoolBackward, globalMaxPoolBackward, maxPoolBackward, reduceMaxBackward, reduceMeanBackward,
  reduceMinBackward, reduceSumBackward,
} from './backward-pool.ts';
import {
  concatBackward, depthToSpaceBackward, expandBackward, gatherBackward, gemmBackward, identityBackward, isReshaping, matMulBackward,
  padBackward, reshapeBackward, resizeBackward, sliceBackward, spaceToDepthBackward, splitBackward, tileBackward, transposeBackward,
} from './backward-shape.ts';
import type { Graph, GraphNode } from './graph.ts';
import { GraphBuilder } from './graph-builder.ts';
import { GraphIndex, removeUnusedNodes } from './graph-index.ts';
import type { OnnxDevice } from './session.ts';

export { buildForwardFromValue, type ForwardFromValue, type ForwardFromValueSpec } from './forward-from-value.ts';
export type { GradientRule } from './backward-context.ts';

/** How a value lies in the graph, as the exporter records it: 'nchw' values are given and returned NHWC. */
export type ValueLayout = 'nchw' | 'flat';

const PLAIN_RULES: Readonly<Record<string, BackwardRule>> = {
  Conv: convBackward,
  ConvTranspose: convTransposeBackward,
  BatchNormalization: batchNormBackward,
  InstanceNormalization: instanceNormBackward,
  Relu: reluBackward,
  Clip: clipBackward,
  Sigmoid: sigmoidBackward,
  Tanh: tanhBackward,
  Elu: eluBackward,
  Softplus: softplusBackward,
  LeakyRelu: leakyReluBackward,
  PRelu: preluBackward,
  Selu: seluBackward,
  Celu: celuBackward,
  Softsign: softsignBackward,
  Abs: absBackward,
  Log: logBackward,
  Reciprocal: reciprocalBackward,
  HardSigmoid: hardSigmoidBackward,
  HardSwish: hardSwishBackward,
  Erf: erfBackward,
  Neg: negBackward,
  Sqrt: sqrtBackward,
  Exp: expBackward,
  Pow: powBackward,
  Cast: castBackward,
  Softmax: softmaxBackward,
  LogSoftmax: logSoftmaxBackward,
  LayerNormalization: layerNormBackward,
  ReduceMean: reduceMeanBackward,
  ReduceSum: reduceSumBackward,
  ReduceMax: reduceMaxBackward,
  ReduceMin: reduceMinBackward,
  MaxPool: maxPoolBackward,
  GlobalMaxPool: globalMaxPoolBackward,
  AveragePool: averagePoolBackward,
  GlobalAveragePool: globalAveragePoolBackward,
  Add: addBackward,
  Sum: addBackward,
  Sub: subBackward,
  Mul: mulBackward,
  Div: divBackward,
  Mean: meanBackward,
  Max: maxMinBackward,
  Min: maxMinBackward,
  Where: whereBackward,
  Transpose: transposeBackward,
  Reshape: reshapeBackward,
  Flatten: reshapeBackward,
  Squeeze: reshapeBackward,
  Unsqueeze: reshapeBackward,
  Identity: identityBackward,
  Dropout: identityBackward,
  Concat: concatBackward,
  Pad: padBackward,
  Slice: sliceBackward,
  Split: splitBackward,
  Gather: gatherBackward,
  Expand: expandBackward,
  Tile: tileBackward,
  DepthToSpace: depthToSpaceBackward,
  SpaceToDepth: spaceToDepthBackward,
  Resize: resizeBackward,
  MatMul: matMulBackward,
  Gemm: gemmBackward,
};

export interface GradientSpec {
  /** The graph input whose gradient may be asked for. */
  readonly input: string;
  /** Class scores [n, classes]. */
  readonly score: string;
  /** Values whose activations and ∂score/∂value to output, in this order. */
  readonly layers: readonly string[];
  /** Also output ∂score/∂input. */
  readonly inputGradient: boolean;
  readonly rule: GradientRule;
  /** Values written by ops the modified rules leave plain (functional calls in the torch original; createEngine's functionalLayers). */
  readonly plainValues?: ReadonlySet<string>;
  /** Layouts of values (the exporter's): 4-D 'nchw' values come out NHWC. Absent: every value as the graph has it. */
  readonly layouts?: ReadonlyMap<string, ValueLayout>;
  /**
   * The execution provider the graph is built for (absent: cpu). Its ops
   * differ where a provider lacks one: WebGPU computes no MaxPool Indices,
   * so max pooling's backward compares with the pooled maxima there.
   */
  readonly device?: OnnxDevice;
}

export interface GradientGraph {
  readonly graph: Graph;
  /** The new float32 graph input [n, classes]: the one-hot mask of target classes (score = Σ score·mask). */
  readonly targets: string;
  /** Output names: each layer's activations, in the order asked. */
  readonly activations: string[];
  /** Output names: each layer's ∂score/∂activations, same order and shapes. */
  readonly gradients: string[];
  /** Output name of ∂score/∂input, when asked for. */
  readonly input?: string;
}

/**
 * Where a value asked for is a view the score does not read — an NHWC tap
 * (Transpose), an Identity or a reshape of a value it does read — its
 * gradient is the source's, viewed the same way.
 */
interface Resolved {
  /** The value the backward pass reaches. */
  readonly key: string;
  /** The view ops from key to the value asked for, in forward order. */
  readonly views: readonly GraphNode[];
}

function resolveView(index: GraphIndex, value: string, scoreReads: ReadonlySet<string>): Resolved | undefined {
  const views: GraphNode[] = [];
  let current = value;
  while (!scoreReads.has(current)) {
    const producer = index.producer(current);
    if (!producer || !(producer.op === 'Transpose' || producer.op === 'Identity' || isReshaping(producer))) return undefined;
    views.unshift(producer);
    current = producer.inputs[0];
  }
  return { key: current, views };
}

/** Each value's gradient contributions, summed once all have arrived. */
export class GradientSums {
  private readonly contributions = new Map<string, Gradient[]>();
  private readonly totals = new Map<string, Gradient>();

  constructor(readonly ctx: BackwardContext) {}

  contribute(value: string, gradient: Gradient): void {
    if (this.totals.has(value)) throw new Error(`gradient of ${value} was read before all its contributions arrived`);
    this.contributions.set(value, [...(this.contributions.get(value) ?? []), gradient]);
  }

  /** The value's whole gradient (undefined: nothing reached it); call once every consumer has contributed. */
  total(value: string): Gradient | undefined {
    const known = this.totals.get(value);
    if (known) return known;
    const parts = this.contributions.get(value);
    if (!parts) return undefined;
    let total: Gradient;
    if (parts.length === 1) {
      total = parts[0];
    } else {
      const shape = this.ctx.shape(value);
      const values = parts.map((part) => this.ctx.materialize(part));
      const sum = (inputs: string[], name: string) => this.ctx.sum(inputs, name, shape);
      const summed = sum(values, `${value}.grad`);
      const plain = parts.some((part) => part.plain !== undefined) ? sum(parts.map((part, i) => part.plain ?? values[i]), `${value}.grad.plain`) : undefined;
      total = plain === undefined ? { value: summed } : { value: summed, plain };
    }
    this.totals.set(value, total);
    return total;
  }

  /** The gradient as one value, zeros where nothing reached it. */
  materialized(value: string): string {
    const total = this.total(value);
    return total ? this.ctx.materialize(total) : this.ctx.zeros(this.ctx.shape(value), `${value}.grad.zeros`);
  }
}

function checkValue(index: GraphIndex, value: string, what: string): void {
  if (!index.has(value)) throw new Error(`gradient graph: the forward graph has no ${what} value named ${value}`);
}

/** The same view ops applied to a gradient as to the activations (a tap's Transpose, a reshape). */
function viewGradient(ctx: BackwardContext, gradient: string, views: readonly GraphNode[]): string {
  let current = gradient;
  for (const view of views) {
    const shape = ctx.shape(view.outputs[0]);
    current = view.op === 'Transpose'
      ? ctx.op('Transpose', [current], `${view.outputs[0]}.grad`, shape, view.attributes ? { ...view.attributes } : undefined)
      : ctx.reshape(current, shape, `${view.outputs[0]}.grad`);
  }
  return current;
}

/** The value as an output in NHWC where it is a 4-D 'nchw' value; each output name once. */
function outputValue(builder: GraphBuilder, value: string, layout: ValueLayout | undefined, taken: Set<string>): string {
  const shape = builder.shape(value);
  let out = value;
  if (layout === 'nchw' && shape.length === 4) out = builder.op('Transpose', [value], `${value}.nhwc`, [shape[0], shape[2], shape[3], shape[1]], { perm: { ints: [0, 2, 3, 1] } });
  if (taken.has(out) || builder.inputs.some((info) => info.name === out)) out = builder.op('Identity', [out], `${out}.out`, builder.shape(out), undefined, builder.dtype(out));
  taken.add(out);
  builder.addOutput(out);
  return out;
}

/** Whether a gradient may flow into `value`: a float value computed at run time (not a constant, not an integer or bool). */
function carriesGradient(index: GraphIndex, value: string): boolean {
  const dtype = index.graph.values.get(value)?.dtype;
  return (dtype === undefined || dtype === 'float32') && index.constant(value) === undefined;
}

/**
 * The nodes on the path from the graph's inputs to its outputs through
 * which a gradient would flow (float values computed from an input and read
 * by an output, not through shapes, indices or constants) whose op has no
 * plain backward rule: what keeps gradient-based explainers off the model.
 */
export function undifferentiableOps(graph: Graph): { op: string; node: string }[] {
  const index = new GraphIndex(graph);
  const fromInput = new Set(graph.inputs.filter((info) => info.dtype === 'float32').map((info) => info.name));
  for (const node of graph.nodes) {
    if (node.inputs.some((input) => input !== '' && fromInput.has(input) && carriesGradient(index, input))) {
      for (const output of node.outputs) if (output !== '' && carriesGradient(index, output)) fromInput.add(output);
    }
  }
  const toOutput = new Set(graph.outputs.map((info) => info.name));
  const found: { op: string; node: string }[] = [];
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const node = graph.nodes[i];
    if (!node.outputs.some((output) => toOutput.has(output) && fromInput.has(output))) continue;
    const differentiated = node.inputs.filter((input) => input !== '' && fromInput.has(input) && carriesGradient(index, input));
    if (differentiated.length === 0) continue;
    differentiated.forEach((input) => toOutput.add(input));
    if (!PLAIN_RULES[node.op]) found.push({ op: node.op, node: node.name ?? node.outputs[0] });
  }
  return found.reverse();
}

/** What backpropagate needs: where the backward pass starts and which values it differentiates towards. */
export interface BackpropagationSpec {
  /** Gradients at values of the forward graph (the score's: the target mask; a loss's: its gradient). */
  readonly seeds: ReadonlyArray<readonly [string, Gradient]>;
  /** Values whose gradients are wanted: only nodes downstream of one of them are differentiated. */
  readonly starts: ReadonlySet<string>;
  readonly rule: GradientRule;
  readonly plainValues?: ReadonlySet<string>;
  readonly device?: OnnxDevice;
}

/**
 * Extends `builder` (a continuation of the forward graph `index` describes)
 * with the backward pass from the seeds to the starts. Returns the sums from
 * which each start's gradient is read (`materialized`).
 */
export function backpropagate(builder: GraphBuilder, index: GraphIndex, spec: BackpropagationSpec): { ctx: BackwardContext; gradients: GradientSums } {
  const scoreReads = index.ancestors(spec.seeds.map(([value]) => value));
  const reached = index.descendants(spec.starts);
  const ctx = new BackwardContext(builder, index, spec.starts, spec.device);
  const gradients = new GradientSums(ctx);
  for (const [value, gradient] of spec.seeds) gradients.contribute(value, gradient);
  const rules = { ...PLAIN_RULES, ...modifiedRules(spec.rule, PLAIN_RULES, spec.plainValues) };
  const nodes = index.graph.nodes;
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i];
    const wants = node.inputs.map((input) => input !== '' && reached.has(input) && scoreReads.has(input) && carriesGradient(index, input));
    if (!wants.some(Boolean) || !node.outputs.some((output) => scoreReads.has(output))) continue;
    const outputs = node.outputs.map((output) => (output === '' ? undefined : gradients.total(output)));
    const dy = outputs.find((gradient) => gradient !== undefined);
    if (!dy) continue;
    const label = node.name ?? node.outputs[0];
    const rule = rules[node.op];
    if (!rule) throw undifferentiable(node.op, label);
    if (outputs.slice(1).some((gradient) => gradient !== undefined) && !readsEveryOutput(rule)) {
      throw new Error(`gradient graph: ${node.op} ${label}: gradients reach an output other than its first`);
    }
    const passed = rule(ctx, node, dy, wants, outputs);
    passed.forEach((gradient, j) => {
      if (gradient && wants[j]) gradients.contribute(node.inputs[j], gradient);
    });
  }
  return { ctx, gradients };
}

export function buildGradientGraph(forward: Graph, spec: GradientSpec): GradientGraph {
  const index = new GraphIndex(forward);
  checkValue(index, spec.input, 'input');
  checkValue(index, spec.score, 'score');
  spec.layers.forEach((layer) => checkValue(index, layer, 'layer'));
  const scoreShape = index.shape(spec.score);
  if (scoreShape.length !== 2) throw new Error(`gradient graph: the score ${spec.score} is [${scoreShape.join(', ')}], not [n, classes]`);
  if (spec.layers.length === 0 && !spec.inputGradient) throw new Error('gradient graph: ask for a layer or the input gradient');

  const scoreReads = index.ancestors([spec.score]);
  const resolved = spec.layers.map((layer) => {
    const found = resolveView(index, layer, scoreReads);
    if (!found) throw new UserError(`The class scores do not depend on ${layer}; pick a layer on the path to the output.`);
    return found;
  });
  if (spec.inputGradient && !scoreReads.has(spec.input)) throw new UserError(`The class scores do not depend on the input ${spec.input}.`);
  const starts = new Set(resolved.map((r) => r.key));
  if (spec.inputGradient) starts.add(spec.input);

  const builder = GraphBuilder.from(forward, `${forward.name}.gradients`);
  builder.outputs = [];
  const targets = builder.addInput('targets', scoreShape);
  const { ctx, gradients } = backpropagate(builder, index, {
    seeds: [[spec.score, { value: targets }]],
    starts,
    rule: spec.rule,
    ...(spec.plainValues ? { plainValues: spec.plainValues } : {}),
    ...(spec.device ? { device: spec.device } : {}),
  });

  const taken = new Set<string>();
  const activations: string[] = [];
  const layerGradients: string[] = [];
  spec.layers.forEach((layer, i) => {
    const layout = spec.layouts?.get(layer);
    activations.push(outputValue(builder, layer, layout, taken));
    const gradient = viewGradient(ctx, gradients.materialized(resolved[i].key), resolved[i].views);
    layerGradients.push(outputValue(builder, gradient, layout, taken));
  });
  const input = spec.inputGradient ? outputValue(builder, gradients.materialized(spec.input), spec.layouts?.get(spec.input), taken) : undefined;
  removeUnusedNodes(builder, [spec.input, targets]);
  return { graph: builder.build(), targets, activations, gradients: layerGradients, ...(input !== undefined ? { input } : {}) };
}
