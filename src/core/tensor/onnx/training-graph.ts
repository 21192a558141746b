/**
 * Training graphs: one optimizer step of a tfjs layers-model as one ONNX
 * graph, so that ONNX Runtime runs the forward in training mode, the
 * backward to every trained weight, and the optimizer's update in one call.
 *
 * The weights are not constants here. Every trainable weight lives in one
 * flat float32 vector `params` (in an order the caller lays out:
 * ParameterLayout), each in the layout the ONNX op reads it in — a
 * convolution's kernel [out, in, kh, kw] where tfjs holds [kh, kw, in, out],
 * the permutation the graph reports in `weightLayouts` — so that the graph
 * only slices and reshapes it and no step transposes a weight or its
 * gradient (the caller permutes its host copies once); batch norms' running
 * statistics live in `stats` likewise. The graph takes those vectors and the
 * optimizer's state and returns the updated ones, so the caller feeds each step's outputs to
 * the next and nothing is rebuilt between steps.
 *
 * PyTorch's semantics (train-loop.ts states them): batch norm normalises
 * with the batch's statistics (biased variance) and updates its running
 * statistics with the layer's momentum (0.1 in PyTorch's terms for the
 * built-in architectures) and the unbiased variance; dropout multiplies
 * by a mask the caller draws (a graph input, so a seed decides it); the loss
 * is the class-weighted mean cross-entropy Σ w·l / Σ w, entered as
 * `weightedTargets` = one-hot · w / Σ w, whose gradient at the logits is
 * softmax · Σ_c t − t; SGD (momentum, Nesterov, L2 weight decay) and Adam
 * (L2 weight decay, bias correction) update each group of weights with the
 * group's own step scalars, so that a head trained alone during
 * freezeEpochs keeps its own Adam step count.
 *
 * An `eval` graph is the same forward in inference mode (running statistics,
 * no dropout) over the same vectors: validation needs no export per epoch.
 */
import type * as tf from '@tensorflow/tfjs';
import { exportLayersModel, type TrainingBatchNorm, type TrainingHooks, type WeightLayout } from './export.ts';
import { backpropagate } from './gradient.ts';
import type { Graph } from './graph.ts';
import { elementCount } from './graph.ts';
import { GraphBuilder } from './graph-builder.ts';
import { GraphIndex, removeUnusedNodes } from './graph-index.ts';
import type { OnnxDevice } from './session.ts';
import type { ResolvedOptimizer } from '../trainer.ts';

/** One tfjs weight's place in the flat vector. */
export interface ParameterSlot {
  readonly variable: tf.LayerVariable;
  readonly offset: number;
  readonly size: number;
}

/** Where each weight lies in a flat vector: slots in vector order, without gaps. */
export class ParameterLayout {
  readonly slots: readonly ParameterSlot[];
  readonly size: number;
  private readonly byVariable = new Map<tf.LayerVariable, ParameterSlot>();

  constructor(variables: readonly tf.LayerVariable[]) {
    let offset = 0;
    this.slots = variables.map((variable) => {
      const size = elementCount(variable.shape as number[]);
      const slot = { variable, offset, size };
      offset += size;
      this.byVariable.set(variable, slot);
      return slot;
    });
    this.size = offset;
  }

  slot(variable: tf.LayerVariable): ParameterSlot | undefined {
    return this.byVariable.get(variable);
  }
}

/** The optimizer's constants; the learning rate (per step) enters as a graph input. */
export type OptimizerSettings = Readonly<Omit<ResolvedOptimizer, 'learningRate'>>;

/** A run of slots updated together, with one set of step scalars. */
export interface ParameterGroup {
  readonly start: number;
  readonly end: number;
}

export interface TrainingGraphSpec {
  readonly batch: number;
  readonly parameters: ParameterLayout;
  /** Running statistics of every batch norm (mean and variance variables). */
  readonly statistics: ParameterLayout;
  /** `train`: one optimizer step of `groups`; `eval`: the inference forward, logits only. */
  readonly mode: 'train' | 'eval';
  readonly groups: readonly ParameterGroup[];
  readonly optimizer: OptimizerSettings;
  readonly device?: OnnxDevice;
}

export interface TrainingGraph {
  readonly graph: Graph;
  /** Per weight the graph reads in another layout than tfjs's: the permutation of tfjs's axes its part of `params` holds. */
  readonly weightLayouts: ReadonlyMap<ParameterSlot, readonly number[]>;
  /** NHWC images [batch, h, w, c]. */
  readonly input: string;
  readonly params: string;
  readonly stats: string;
  /** [batch, classes]: one-hot · w / Σ w (train only). */
  readonly weightedTargets?: string;
  /** One mask per dropout with a rate above 0, each with its shape: 0 or 1/(1 − rate) (train only). */
  readonly dropoutMasks: ReadonlyArray<{ readonly name: string; readonly shape: readonly number[]; readonly rate: number }>;
  /** Per group, in `groups` order (train only). */
  readonly groupInputs: ReadonlyArray<GroupValues>;
  readonly groupOutputs: ReadonlyArray<GroupValues>;
  /** Logits [batch, classes], before the update. */
  readonly logits: string;
  /** Updated running statistics [statistics.size] (train only). */
  readonly statsOut?: string;
}

/** A group's state values (momentum or first moment `m`, second moment `v`) and, as inputs, its step scalars. */
export interface GroupValues {
  readonly params: string;
  readonly m?: string;
  readonly v?: string;
  /** SGD: the learning rate; Adam: lr / (1 − β1ᵗ). */
  readonly stepSize?: string;
  /** Adam: √(1 − β2ᵗ). */
  readonly correction?: string;
}

const TO_ONNX: Record<Exclude<WeightLayout, 'plain'>, readonly number[]> = {
  conv: [3, 2, 0, 1],
  depthwise: [2, 3, 0, 1],
  pointwise: [1, 0],
};

class TrainingHooksImpl implements TrainingHooks {
  readonly weightValues = new Map<ParameterSlot, string>();
  readonly weightLayouts = new Map<ParameterSlot, readonly number[]>();
  readonly runningUpdates = new Map<ParameterSlot, string>();
  readonly masks: Array<{ name: string; shape: readonly number[]; rate: number }> = [];
  /** The graph inputs `params` and `stats`, added when the export first asks for a weight or a batch norm. */
  vectors?: { readonly params: string; readonly stats: string };

  constructor(readonly spec: TrainingGraphSpec) {}

  private inputs(builder: GraphBuilder): { readonly params: string; readonly stats: string } {
    this.vectors ??= { params: builder.addInput('params', [this.spec.parameters.size]), stats: builder.addInput('stats', [this.spec.statistics.size]) };
    return this.vectors;
  }

  private slice(builder: GraphBuilder, vector: string, slot: ParameterSlot, name: string): string {
    return builder.op('Slice', [
      vector,
      builder.int64(`${name}.start`, [slot.offset]),
      builder.int64(`${name}.end`, [slot.offset + slot.size]),
      builder.int64(`${name}.axis`, [0]),
    ], name, [slot.size]);
  }

  weight(builder: GraphBuilder, variable: tf.LayerVariable, shape: readonly number[], layout: WeightLayout): string | undefined {
    const slot = this.spec.parameters.slot(variable);
    if (!slot) return undefined;
    const name = `param.${variable.name}`;
    const flat = this.slice(builder, this.inputs(builder).params, slot, name);
    this.weightValues.set(slot, flat);
    const tfjsShape = variable.shape as number[];
    const reshape = (value: string, to: readonly number[], as: string) =>
      builder.op('Reshape', [value, builder.int64(`${as}.shape`, to)], as, to);
    if (layout === 'plain') return reshape(flat, tfjsShape, `${name}.tfjs`);
    // The vector holds this weight permuted as the op reads it (see the file's comment): a reshape gives the op's shape.
    const perm = TO_ONNX[layout];
    const held = this.weightLayouts.get(slot);
    if (held && held.join() !== perm.join()) throw new Error(`training graph: weight ${variable.name} is read in two layouts`);
    this.weightLayouts.set(slot, perm);
    return reshape(flat, layout === 'conv' ? perm.map((axis) => tfjsShape[axis]) : shape, `${name}.onnx`);
  }

  batchNorm(builder: GraphBuilder, x: string, layer: TrainingBatchNorm, out: string): string {
    const shape = builder.shape(x);
    const channels = shape[1];
    const meanSlot = this.spec.statistics.slot(layer.movingMean);
    const varianceSlot = this.spec.statistics.slot(layer.movingVariance);
    if (!meanSlot || !varianceSlot) throw new Error(`training graph: batch norm ${out} has no running statistics in the layout`);
    const { stats } = this.inputs(builder);
    const running = this.slice(builder, stats, meanSlot, `${out}.running_mean`);
    const runningVariance = this.slice(builder, stats, varianceSlot, `${out}.running_var`);
    const epsilon = { float: layer.epsilon };
    if (this.spec.mode === 'eval') {
      return builder.op('BatchNormalization', [x, layer.scale, layer.offset, running, runningVariance], out, shape, { epsilon });
    }
    const axes = shape.map((_, i) => i).filter((i) => i !== 1);
    const count = axes.reduce((product, axis) => product * shape[axis], 1);
    if (count < 2) throw new Error(`batch norm ${out} sees ${count} value per channel in training (PyTorch's "Expected more than 1 value per channel when training"); use a larger batch`);
    const perChannel = [1, channels, ...shape.slice(2).map(() => 1)];
    const mean = builder.op('ReduceMean', [x], `${out}.batch_mean`, [channels], { axes: { ints: axes }, keepdims: { int: 0 } });
    const meanPerChannel = builder.op('Reshape', [mean, builder.int64(`${out}.perChannel`, perChannel)], `${out}.batch_mean.perChannel`, perChannel);
    const centred = builder.op('Sub', [x, meanPerChannel], `${out}.centred`, shape);
    // ReduceMean of the squares rather than ReduceSumSquare: ONNX Runtime 1.23's ReduceSumSquare sums less accurately
    // (measured: a DenseNet's batch-norm outputs 2.3e-5 from float64 against 4.4e-6), enough to flip a ReLU.
    const variance = builder.op('ReduceMean', [builder.op('Mul', [centred, centred], `${out}.squares`, shape)], `${out}.batch_var`, [channels], { axes: { ints: axes }, keepdims: { int: 0 } });
    const y = builder.op('BatchNormalization', [x, layer.scale, layer.offset, mean, variance], out, shape, { epsilon });
    const scalar = (value: number) => builder.float32(`${out}.const`, [value], []);
    const blend = (batch: string, factor: number, current: string, as: string, momentum: number) =>
      builder.op('Add', [
        builder.op('Mul', [batch, scalar(factor)], `${as}.batch`, [channels]),
        builder.op('Mul', [current, scalar(1 - momentum)], `${as}.kept`, [channels]),
      ], as, [channels]);
    this.runningUpdates.set(meanSlot, blend(mean, layer.momentum, running, `${out}.running_mean.next`, layer.momentum));
    this.runningUpdates.set(varianceSlot, blend(variance, layer.momentum * (count / (count - 1)), runningVariance, `${out}.running_var.next`, layer.momentum));
    return y;
  }

  dropout(builder: GraphBuilder, x: string, rate: number, out: string): string {
    if (this.spec.mode === 'eval') return x;
    const shape = builder.shape(x);
    const mask = builder.addInput(`${out}.mask`, shape);
    this.masks.push({ name: mask, shape, rate });
    return builder.op('Mul', [x, mask], out, shape);
  }
}

/** Concatenates flat values (one value: itself). */
function concat(builder: GraphBuilder, values: readonly string[], name: string): string {
  const total = values.reduce((sum, value) => sum + elementCount(builder.shape(value)), 0);
  return values.length === 1 ? values[0] : builder.op('Concat', values, name, [total], { axis: { int: 0 } });
}

/** The optimizer's update of one group, given its weights and gradient (flat); returns its outputs. */
function update(builder: GraphBuilder, optimizer: OptimizerSettings, w: string, gradient: string, index: number): { inputs: GroupValues; outputs: GroupValues } {
  const size = builder.shape(w);
  const name = `group${index}`;
  const scalar = (value: number) => builder.float32(`${name}.const`, [value], []);
  const op = (kind: string, inputs: string[], as: string) => builder.op(kind, inputs, `${name}.${as}`, size);
  const stepSize = builder.addInput(`${name}.stepSize`, []);
  const g = optimizer.weightDecay > 0 ? op('Add', [gradient, op('Mul', [w, scalar(optimizer.weightDecay)], 'decay')], 'decayed') : gradient;
  if (optimizer.kind === 'sgd') {
    let step = g;
    let m: string | undefined;
    let buffer: string | undefined;
    if (optimizer.momentum > 0) {
      m = builder.addInput(`${name}.m`, size);
      buffer = op('Add', [op('Mul', [m, scalar(optimizer.momentum)], 'kept'), g], 'momentum');
      step = optimizer.nesterov ? op('Add', [g, op('Mul', [buffer, scalar(optimizer.momentum)], 'lookahead')], 'nesterov') : buffer;
    }
    const next = op('Sub', [w, op('Mul', [step, stepSize], 'step')], 'params');
    return { inputs: { params: w, stepSize, ...(m ? { m } : {}) }, outputs: { params: next, ...(buffer ? { m: buffer } : {}) } };
  }
  const m = builder.addInput(`${name}.m`, size);
  const v = builder.addInput(`${name}.v`, size);
  const correction = builder.addInput(`${name}.correction`, []);
  const first = op('Add', [op('Mul', [m, scalar(optimizer.beta1)], 'm.kept'), op('Mul', [g, scalar(1 - optimizer.beta1)], 'm.new')], 'm');
  const second = op('Add', [op('Mul', [v, scalar(optimizer.beta2)], 'v.kept'), op('Mul', [op('Mul', [g, g], 'g2'), scalar(1 - optimizer.beta2)], 'v.new')], 'v');
  const denominator = op('Add', [op('Div', [op('Sqrt', [second], 'rms'), correction], 'rms.corrected'), scalar(optimizer.epsilon)], 'denominator');
  const next = op('Sub', [w, op('Mul', [op('Div', [first, denominator], 'direction'), stepSize], 'step')], 'params');
  return { inputs: { params: w, stepSize, m, v, correction }, outputs: { params: next, m: first, v: second } };
}

export function buildTrainingGraph(model: tf.LayersModel, spec: TrainingGraphSpec): TrainingGraph {
  const hooks = new TrainingHooksImpl(spec);
  const exported = exportLayersModel(model, { batch: spec.batch, training: hooks });
  if (!hooks.vectors) throw new Error(`training graph: model ${model.name} has no weights to train`);
  return finish(exported.graph, exported.input, exported.output, hooks.vectors.params, hooks.vectors.stats, hooks, spec);
}

/**
 * The graph with each zero Pad that only convolutions read folded into their
 * pads (ZeroPadding2D before a strided convolution, as the built-ins write
 * torchvision's symmetric padding). ONNX Runtime would fuse them itself, but
 * not where the backward pass reads the padded tensor too: the weight
 * gradient then pads in its own convolution, and the input gradient needs no
 * slice. Taps are not asked of training graphs, so the padded values may go.
 */
function foldPadsIntoConvs(graph: Graph): Graph {
  const index = new GraphIndex(graph);
  const outputs = new Set(graph.outputs.map((info) => info.name));
  const folded = new Map<string, { source: string; pads: number[] }>();
  for (const node of graph.nodes) {
    if (node.op !== 'Pad' || outputs.has(node.outputs[0])) continue;
    const mode = node.attributes?.mode;
    if (mode !== undefined && !('string' in mode && mode.string === 'constant')) continue;
    const fill = node.inputs[2] ? index.constant(node.inputs[2]) : undefined;
    if (node.inputs[2] && (fill === undefined || Number(fill.data[0]) !== 0 || Object.is(Number(fill.data[0]), -0))) continue;
    const padData = index.constant(node.inputs[1])?.data;
    if (!padData || padData.length !== 8) continue;
    const pads = Array.from(padData as BigInt64Array, Number);
    if (pads[0] !== 0 || pads[1] !== 0 || pads[4] !== 0 || pads[5] !== 0 || pads.some((p) => p < 0)) continue;
    const readers = index.consumers(node.outputs[0]);
    const convs = readers.every((reader) => reader.op === 'Conv' && reader.inputs[0] === node.outputs[0] && (reader.attributes?.auto_pad === undefined));
    if (readers.length === 0 || !convs) continue;
    folded.set(node.outputs[0], { source: node.inputs[0], pads: [pads[2], pads[3], pads[6], pads[7]] });
  }
  if (folded.size === 0) return graph;
  const nodes = graph.nodes.flatMap((node) => {
    if (node.op === 'Pad' && folded.has(node.outputs[0])) return [];
    const pad = node.op === 'Conv' ? folded.get(node.inputs[0]) : undefined;
    if (!pad) return [node];
    const own = node.attributes?.pads;
    const current = own !== undefined && 'ints' in own ? own.ints : [0, 0, 0, 0];
    return [{ ...node, inputs: [pad.source, ...node.inputs.slice(1)], attributes: { ...node.attributes, pads: { ints: current.map((p, i) => p + pad.pads[i]) } } }];
  });
  const values = new Map(graph.values);
  for (const value of folded.keys()) values.delete(value);
  return { ...graph, nodes, values };
}

function finish(exported: Graph, input: string, logits: string, params: string, stats: string, hooks: TrainingHooksImpl, spec: TrainingGraphSpec): TrainingGraph {
  const forward = foldPadsIntoConvs(exported);
  const builder = GraphBuilder.from(forward, `${forward.name}.${spec.mode}`);
  builder.outputs = [];
  const logitsOut = builder.op('Identity', [logits], 'logits', builder.shape(logits));
  builder.addOutput(logitsOut);
  if (spec.mode === 'eval') {
    removeUnusedNodes(builder, [input, params, stats]);
    return { graph: builder.build(), weightLayouts: hooks.weightLayouts, input, params, stats, dropoutMasks: [], groupInputs: [], groupOutputs: [], logits: logitsOut };
  }

  const [batch, classes] = builder.shape(logits);
  const weightedTargets = builder.addInput('weightedTargets', [batch, classes]);
  const probabilities = builder.op('Softmax', [logits], 'loss.probabilities', [batch, classes], { axis: { int: 1 } });
  const rowWeights = builder.op('ReduceSum', [weightedTargets, builder.int64('loss.classAxis', [1])], 'loss.rowWeights', [batch, 1], { keepdims: { int: 1 } });
  const seed = builder.op('Sub', [builder.op('Mul', [probabilities, rowWeights], 'loss.expected', [batch, classes]), weightedTargets], 'loss.grad', [batch, classes]);

  const trained = spec.parameters.slots.filter((slot) => spec.groups.some((group) => slot.offset >= group.start && slot.offset < group.end));
  const starts = new Set(trained.map((slot) => {
    const value = hooks.weightValues.get(slot);
    if (!value) throw new Error(`training graph: weight ${slot.variable.name} is not read by the model`);
    return value;
  }));
  const index = new GraphIndex(forward);
  const { gradients } = backpropagate(builder, index, { seeds: [[logits, { value: seed }]], starts, rule: 'plain', ...(spec.device ? { device: spec.device } : {}) });

  const groupInputs: GroupValues[] = [];
  const groupOutputs: GroupValues[] = [];
  spec.groups.forEach((group, i) => {
    const slots = trained.filter((slot) => slot.offset >= group.start && slot.offset < group.end);
    const covered = slots.reduce((sum, slot) => sum + slot.size, 0);
    if (slots.length === 0 || slots[0].offset !== group.start || covered !== group.end - group.start) {
      throw new Error(`training graph: group [${group.start}, ${group.end}) does not hold whole, adjacent weights`);
    }
    const gradient = concat(builder, slots.map((slot) => gradients.materialized(hooks.weightValues.get(slot) as string)), `group${i}.gradient`);
    const w = builder.op('Slice', [params, builder.int64(`group${i}.start`, [group.start]), builder.int64(`group${i}.end`, [group.end]), builder.int64(`group${i}.axis`, [0])], `group${i}.weights`, [group.end - group.start]);
    const { inputs, outputs } = update(builder, spec.optimizer, w, gradient, i);
    groupInputs.push(inputs);
    const named: GroupValues = {
      params: builder.op('Identity', [outputs.params], `group${i}.params.out`, builder.shape(outputs.params)),
      ...(outputs.m ? { m: builder.op('Identity', [outputs.m], `group${i}.m.out`, builder.shape(outputs.m)) } : {}),
      ...(outputs.v ? { v: builder.op('Identity', [outputs.v], `group${i}.v.out`, builder.shape(outputs.v)) } : {}),
    };
    for (const value of [named.params, named.m, named.v]) if (value) builder.addOutput(value);
    groupOutputs.push(named);
  });

  let statsOut: string | undefined;
  if (spec.statistics.size > 0) {
    const parts = spec.statistics.slots.map((slot) => {
      const next = hooks.runningUpdates.get(slot);
      if (!next) throw new Error(`training graph: running statistic ${slot.variable.name} is not updated by any batch norm`);
      return next;
    });
    statsOut = builder.op('Identity', [concat(builder, parts, 'stats.next')], 'stats.out', [spec.statistics.size]);
    builder.addOutput(statsOut);
  }
  const keep = [input, params, stats, weightedTargets, ...hooks.masks.map((mask) => mask.name), ...groupInputs.flatMap((g) => [g.stepSize, g.m, g.v, g.correction].filter((v): v is string => v !== undefined))];
  removeUnusedNodes(builder, keep);
  return {
    graph: builder.build(),
    weightLayouts: hooks.weightLayouts,
    input,
    params,
    stats,
    weightedTargets,
    dropoutMasks: hooks.masks,
    groupInputs,
    groupOutputs,
    logits: logitsOut,
    ...(statsOut ? { statsOut } : {}),
  };
}
