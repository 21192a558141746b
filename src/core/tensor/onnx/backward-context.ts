/**
 * What the backward rules of each op family share while they extend a
 * forward graph with its backward pass: the builder, lookups into the forward
 * graph, shared constants, and the form a gradient travels in.
 */
import { UserError } from '../../errors.ts';
import type { Attribute, ConstantTensor, DataType, GraphNode } from './graph.ts';
import { elementCount, float32Tensor } from './graph.ts';
import type { GraphBuilder } from './graph-builder.ts';
import type { GraphIndex } from './graph-index.ts';
import { routeToFirstMaxima } from './max-pool-routing.ts';
import type { OnnxDevice } from './session.ts';

/** Which backward rules: plain gradients, guided backprop, or DeepLift's rescale rule. */
export type GradientRule = 'plain' | 'guided' | 'deeplift';

/** One contribution to a value's gradient. */
export interface Gradient {
  readonly value: string;
  /**
   * A factor per channel (axis 1) not yet multiplied in: a batch norm's
   * backward, left for the convolution before it to fold into its weights.
   */
  readonly channelScale?: Float32Array;
  /**
   * DeepLift only: this contribution as it would be had the consuming rule
   * node passed back its plain gradient (Captum's hook-ordering quirk: a rule
   * node upstream reads the gradient before the downstream rule replaced it).
   */
  readonly plain?: string;
}

/**
 * How max pooling's backward finds each window's maximum: the forward
 * MaxPool's Indices output and ScatterElements (fast; ONNX Runtime's CPU and
 * CUDA providers), or comparing the input with the pooled maxima
 * (max-pool-routing.ts; the WebGPU provider computes no Indices).
 */
export type MaxPoolRouting = 'indices' | 'compare';

/**
 * The gradients one node passes back to its inputs (undefined: none), given
 * the gradient at its first output, `dy`. `outputs` holds every output's
 * gradient (undefined where none reached it); only a rule marked with
 * `readingEveryOutput` (Split) is called where a gradient reaches an output
 * other than the first, and then `dy` is the first gradient present, the
 * first output's or not.
 */
export type BackwardRule = (
  ctx: BackwardContext,
  node: GraphNode,
  dy: Gradient,
  wants: readonly boolean[],
  outputs: ReadonlyArray<Gradient | undefined>,
) => ReadonlyArray<Gradient | undefined>;

const everyOutput = new WeakSet<BackwardRule>();

/** `rule`, marked as one that reads the gradients of all its node's outputs (its `outputs` argument). */
export function readingEveryOutput(rule: BackwardRule): BackwardRule {
  everyOutput.add(rule);
  return rule;
}

/** Whether `rule` handles gradients at outputs other than its node's first. */
export function readsEveryOutput(rule: BackwardRule): boolean {
  return everyOutput.has(rule);
}

export class BackwardContext {
  private readonly scalars = new Map<number, string>();
  private readonly indices = new Map<GraphNode, string>();
  private readonly memos = new Map<string, unknown>();
  private readonly croppable = new Set<string>();

  constructor(
    readonly builder: GraphBuilder,
    readonly index: GraphIndex,
    /** Values whose own gradient is asked for: a rule may not fold anything across them. */
    readonly requested: ReadonlySet<string>,
    /** The provider the graph is built for: ONNX Runtime's WebGPU provider lacks some ops the rules would use (see webgpu). */
    readonly device: OnnxDevice = 'cpu',
  ) {}

  get maxPoolRouting(): MaxPoolRouting {
    return this.webgpu ? 'compare' : 'indices';
  }

  /**
   * ONNX Runtime 1.23.2's WebGPU provider has no Sum, Max, Min, And or Or
   * (checked node by node on lavapipe): it runs such nodes on the CPU, with a
   * download and an upload of their operands around each, so the rules write
   * them with ops it has there.
   */
  private get webgpu(): boolean {
    return this.device === 'webgpu';
  }

  /** Σ of `inputs` (same shape, or broadcasting to `shape`): one Add for two, else Sum — a chain of Adds on WebGPU. */
  sum(inputs: readonly string[], name: string, shape: readonly number[]): string {
    if (inputs.length === 1) return inputs[0];
    if (inputs.length === 2 || !this.webgpu) return this.op(inputs.length === 2 ? 'Add' : 'Sum', inputs, name, shape);
    return inputs.slice(1).reduce((total, input, i) => this.op('Add', [total, input], i === inputs.length - 2 ? name : `${name}.partial${i}`, shape), inputs[0]);
  }

  /** The element-wise maximum of a and b: Max — on WebGPU Where(a < b, b, a), the same values. */
  maximum(a: string, b: string, name: string, shape: readonly number[]): string {
    if (!this.webgpu) return this.op('Max', [a, b], name, shape);
    return this.op('Where', [this.op('Less', [a, b], `${name}.secondLarger`, shape, undefined, 'bool'), b, a], name, shape);
  }

  /**
   * dy where every one of the boolean `conditions` holds, else 0: dy times
   * the conditions cast to float — their And cast once, or on WebGPU (no And
   * there) each cast and multiplied in turn, which gives the same values.
   * Casting is twice as fast in ONNX Runtime 1.23 as Where (11 ms against
   * 21 ms over 9.6 M values).
   */
  masked(conditions: readonly string[], dy: string, name: string): string {
    const cast = (keep: string) => this.memo(`mask:${keep}`, () => this.op('Cast', [keep], `${keep}.float`, this.shape(keep), { to: { int: 1 } }));
    const masks = this.webgpu || conditions.length === 1
      ? conditions.map(cast)
      : [cast(this.memo(`and:${conditions.join()}`, () => this.op('And', conditions, `${conditions[0]}.and`, this.shape(conditions[0]), undefined, 'bool')))];
    return masks.reduce((value, mask, i) => this.op('Mul', [value, mask], i === masks.length - 1 ? name : `${name}.masked${i}`, this.shape(dy)), dy);
  }

  shape(value: string): readonly number[] {
    return this.builder.shape(value);
  }

  /** `make()`, once per key: for values several rules would otherwise build twice. */
  memo<T>(key: string, make: () => T): T {
    if (!this.memos.has(key)) this.memos.set(key, make());
    return this.memos.get(key) as T;
  }

  constant(value: string): ConstantTensor | undefined {
    return this.index.constant(value) ?? this.builder.initializers.get(value);
  }

  /** A float32 constant's values, where `value` is one. */
  floats(value: string): Float32Array | undefined {
    const tensor = this.constant(value);
    return tensor?.dtype === 'float32' ? (tensor.data as Float32Array) : undefined;
  }

  /** An int64 constant's values as numbers, where `value` is one. */
  ints(value: string): number[] | undefined {
    const tensor = this.constant(value);
    if (tensor?.dtype === 'int64') return Array.from(tensor.data as BigInt64Array, Number);
    if (tensor?.dtype === 'int32') return Array.from(tensor.data as Int32Array);
    return undefined;
  }

  op(op: string, inputs: readonly string[], name: string, shape: readonly number[], attributes?: Record<string, Attribute>, dtype?: DataType): string {
    return this.builder.op(op, inputs, name, shape, attributes, dtype);
  }

  /** A float32 scalar constant, shared. */
  scalar(value: number): string {
    let name = this.scalars.get(value);
    if (name === undefined) {
      name = this.builder.float32(`grad.const.${value}`, [value], []);
      this.scalars.set(value, name);
    }
    return name;
  }

  int64(name: string, values: readonly number[]): string {
    return this.builder.int64(name, values);
  }

  float32(name: string, values: Float32Array, dims: readonly number[]): string {
    return this.builder.constant(name, float32Tensor(values, dims));
  }

  reshape(value: string, shape: readonly number[], name = `${value}.reshaped`): string {
    const current = this.shape(value);
    if (current.length === shape.length && current.every((size, i) => size === shape[i])) return value;
    return this.op('Reshape', [value, this.int64(`${name}.shape`, shape)], name, shape, undefined, this.builder.dtype(value));
  }

  /** A float32 tensor of zeros made at run time (no constant of that size in the file). */
  zeros(shape: readonly number[], name: string): string {
    const value: Attribute = { tensor: float32Tensor([0], [1]) };
    return this.op('ConstantOfShape', [this.int64(`${name}.shape`, shape)], name, shape, { value });
  }

  /** A per-channel factor as a constant that broadcasts over axis 1 of a rank-`rank` tensor. */
  channelConstant(name: string, scale: Float32Array, rank: number): string {
    return this.float32(name, scale, [scale.length, ...new Array<number>(Math.max(rank - 2, 0)).fill(1)]);
  }

  /** The gradient as one value, any pending per-channel factor multiplied in. */
  materialize(gradient: Gradient): string {
    if (!gradient.channelScale) return gradient.value;
    const shape = this.shape(gradient.value);
    return this.op('Mul', [gradient.value, this.channelConstant(`${gradient.value}.scale`, gradient.channelScale, shape.length)], `${gradient.value}.scaled`, shape);
  }

  /** Records that `value` is the output of a padded Conv emitted here, whose pads a crop may shrink instead of slicing. */
  markCroppable(value: string): void {
    this.croppable.add(value);
  }

  /**
   * `value` without `before`/`after` cells per spatial axis, made by
   * shrinking the pads of the Conv that writes it (no copy), where it is a
   * croppable Conv output read by nothing else yet; undefined otherwise.
   */
  cropConvOutput(value: string, before: readonly number[], after: readonly number[]): string | undefined {
    if (!this.croppable.has(value)) return undefined;
    const position = this.builder.nodes.findIndex((node) => node.outputs[0] === value);
    const node = this.builder.nodes[position];
    const pads = node?.attributes?.pads;
    if (!node || node.op !== 'Conv' || pads === undefined || !('ints' in pads)) return undefined;
    if (this.builder.nodes.some((other) => other.inputs.includes(value))) return undefined;
    const rank = pads.ints.length / 2;
    const shrunk = [...pads.ints.slice(0, rank).map((p, i) => p - before[i]), ...pads.ints.slice(rank).map((p, i) => p - after[i])];
    if (shrunk.some((p) => p < 0)) return undefined;
    const shape = this.shape(value);
    const cropped = [...shape.slice(0, 2), ...shape.slice(2).map((size, i) => size - before[i] - after[i])];
    this.builder.nodes[position] = { ...node, attributes: { ...node.attributes, pads: { ints: shrunk } } };
    this.builder.values.set(value, { name: value, dtype: 'float32', shape: cropped });
    this.croppable.delete(value);
    return value;
  }

  /**
   * The Indices output of a forward MaxPool (flattened positions in its
   * input, ties going to the first maximum in row-major order), added to the
   * forward node itself so that the pooling runs once.
   */
  maxPoolIndices(node: GraphNode): string {
    const known = this.indices.get(node);
    if (known) return known;
    let name = node.outputs[1];
    if (name === undefined || name === '') {
      const position = this.builder.nodes.indexOf(node);
      if (position < 0) throw new Error(`MaxPool ${node.name ?? node.outputs[0]} is not in the graph being extended`);
      name = this.builder.fresh(`${node.outputs[0]}.indices`);
      this.builder.values.set(name, { name, dtype: 'int64', shape: this.shape(node.outputs[0]) });
      this.builder.nodes[position] = { ...node, outputs: [node.outputs[0], name] };
    }
    this.indices.set(node, name);
    return name;
  }

  /** Sends v (one value per pooling window) to the input position `indices` names, summing where windows share it. */
  scatter(v: string, indices: string, inputShape: readonly number[], name: string): string {
    const total = elementCount(inputShape);
    const flatIndices = this.memo(`flat:${indices}`, () => this.reshape(indices, [elementCount(this.shape(indices))], `${indices}.flat`));
    const flat = this.reshape(v, [elementCount(this.shape(v))], `${name}.flat`);
    const scattered = this.op('ScatterElements', [this.zeros([total], `${name}.zeros`), flatIndices, flat], `${name}.scattered`, [total], { axis: { int: 0 }, reduction: { string: 'add' } });
    return this.reshape(scattered, inputShape, name);
  }

  /**
   * v (one value per window of MaxPool `node`) sent to the first maximum of
   * its window in the node's input, summed where windows share a cell.
   */
  routeToMaxima(node: GraphNode, v: string, name: string): string {
    if (this.maxPoolRouting === 'compare') return routeToFirstMaxima(this, node, v, name);
    return this.scatter(v, this.maxPoolIndices(node), this.shape(node.inputs[0]), name);
  }

  /** For a batch [inputs; references] (DeepLift): the two halves, each [1, pairs, ...]. */
  halves(value: string): [string, string] {
    return this.memo(`halves:${value}`, () => {
      const shape = this.shape(value);
      const half = [1, shape[0] / 2, ...shape.slice(1)];
      const [inputs, references] = this.builder.node('Split', [this.pairView(value), this.int64(`${value}.halves`, [1, 1])], [
        { name: `${value}.inputs`, shape: half },
        { name: `${value}.references`, shape: half },
      ], { axis: { int: 0 } });
      return [inputs, references] as [string, string];
    });
  }

  /**
   * For a batch [inputs; references] (DeepLift): input − reference, one row
   * per pair, shaped [1, pairs, ...] so that it broadcasts over the batch
   * viewed as [2, pairs, ...].
   */
  pairedDelta(value: string): string {
    return this.memo(`pairedDelta:${value}`, () => {
      const [inputs, references] = this.halves(value);
      return this.op('Sub', [inputs, references], `${value}.delta`, this.shape(inputs));
    });
  }

  /** A batch [inputs; references] viewed as [2, pairs, ...]. */
  pairView(value: string): string {
    const shape = this.shape(value);
    if (shape[0] % 2 !== 0) throw new Error(`DeepLift needs a batch of inputs and references, an even number of rows, not ${shape[0]}`);
    return this.memo(`pairs:${value}`, () => this.reshape(value, [2, shape[0] / 2, ...shape.slice(1)], `${value}.pairs`));
  }
}

/**
 * The user's error where a model holds an op, or a form of one, that the
 * ONNX engine cannot differentiate (`what`: the form, or '' for the op).
 */
export function undifferentiable(op: string, node: string, what = ''): UserError {
  return new UserError(`The ONNX engine cannot differentiate ${op}${what ? ` ${what}` : ''} (node ${node}), so gradient-based explainers cannot run on this model; forward-only explainers (occlusion, ScoreCAM, …) and metrics still can.`);
}
