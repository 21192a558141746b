/**
 * A tfjs layers-model as an ONNX forward graph with its weights: the model
 * salgrid builds or loads stays the one source of truth, and this writes the
 * same network for ONNX Runtime.
 *
 * The model is walked with compileLayerGraph, as the tfjs engine walks it, so
 * nested models and layer names (`outer/inner` paths included) mean the same
 * on both engines. Inside, 4-D values are NCHW (ONNX's convention for Conv
 * and pooling); the graph takes NHWC at its input (one Transpose) and every
 * other value keeps the layout tfjs gives it. Taps transpose back to NHWC at
 * the edge (toNhwc, addNhwcOutputs).
 *
 * Only the ops of the engine's vocabulary are emitted (see the common design:
 * Transpose, Conv, BatchNormalization, Relu, Clip, Sigmoid, Tanh, Elu,
 * Softplus, MaxPool, AveragePool, GlobalAveragePool, Pad, Add, Sub, Mul, Div,
 * Concat, Flatten, Reshape, MatMul, Gemm, Identity, Softmax): the gradient
 * builder differentiates exactly these.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.ts';
import { activationName, isSoftmaxLayer } from '../constant-weight-layers.ts';
import { compileLayerGraph, producerIndex, type LayerGraph, type LayerStep } from '../layer-graph.ts';
import { torchName } from '../torch-weights.ts';
import type { Attribute, Graph, GraphNode } from './graph.ts';
import { float, int, ints } from './graph.ts';
import { GraphBuilder } from './graph-builder.ts';

/** How a value lies in the graph: `nchw` (a 4-D tfjs NHWC tensor, transposed), or `flat`: as tfjs has it. */
export type Layout = 'nchw' | 'flat';

export interface ExportOptions {
  /** The static batch size of the graph's input. */
  readonly batch: number;
  /** Leave out a final softmax (a Softmax layer, Activation('softmax') or a fused softmax) so the output is the logits. */
  readonly leaveOutSoftmax?: boolean;
  /** The ONNX value name of a layer's output, from its path (`layer`, or `model/layer` inside a nested model). */
  readonly valueName?: (layerName: string) => string;
  /** Export for training (onnx/training-graph.ts): weights, batch norm and dropout as the hooks make them. */
  readonly training?: TrainingHooks;
}

/**
 * How a tfjs weight's values lie in the ONNX tensor that replaces it:
 * `plain` as they are; `conv` a kernel [kh, kw, in, out] as [out, in, kh, kw];
 * `depthwise` a kernel [kh, kw, in, multiplier] as [in·multiplier, 1, kh, kw];
 * `pointwise` a Dense kernel [in, units] as a 1×1 convolution [units, in, 1, 1].
 */
export type WeightLayout = 'plain' | 'conv' | 'depthwise' | 'pointwise';

/** What a training export asks of the training graph builder instead of writing constants and inference ops. */
export interface TrainingHooks {
  /** The graph value of a weight in ONNX's `shape` (see WeightLayout), or undefined to keep it a constant. */
  weight(builder: GraphBuilder, variable: tf.LayerVariable, shape: readonly number[], layout: WeightLayout): string | undefined;
  /** A batch norm in training mode (batch statistics; running statistics updated), over axis 1 of x. */
  batchNorm(builder: GraphBuilder, x: string, layer: TrainingBatchNorm, out: string): string;
  /** Dropout at `rate` in training mode. */
  dropout(builder: GraphBuilder, x: string, rate: number, out: string): string;
}

/** A batch-norm layer as the training hooks see it: scale and offset as graph values, its moving statistics as tfjs variables. */
export interface TrainingBatchNorm {
  readonly scale: string;
  readonly offset: string;
  readonly epsilon: number;
  /** PyTorch's momentum: the weight of the batch's statistics in the running ones. */
  readonly momentum: number;
  readonly movingMean: tf.LayerVariable;
  readonly movingVariance: tf.LayerVariable;
}

export interface ExportedGraph {
  /** The forward graph: one input, one output. */
  readonly graph: Graph;
  /** The graph's input, NHWC [batch, height, width, channels] as the tfjs model takes it. */
  readonly input: string;
  /** Class scores [batch, classes] (logits when leaveOutSoftmax). */
  readonly output: string;
  /** Each layer's output value in the graph's internal layout, by every name compileLayerGraph gives the layer (name and nested path); layers called more than once are left out, as their output is ambiguous. */
  readonly layerValues: ReadonlyMap<string, string>;
  /** The layout of every value in layerValues (and of the input and output). */
  readonly layouts: ReadonlyMap<string, Layout>;
  /** The layer graph the export walked, for resolving and suggesting layer names. */
  readonly layerGraph: LayerGraph;
  /** The path (LayerStep.path) of the layer each node of graph.nodes computes, by node index; undefined for nodes of no layer (the input's Transpose, a final Flatten of a score map). */
  readonly nodeLayers: readonly (string | undefined)[];
}

/** tfjs layer names of the built-in architectures are torch module paths with '.' → '_'; a nested path keeps its '/'. */
export function torchValueName(layerName: string): string {
  return layerName.split('/').map(torchName).join('/');
}

type LayerVariable = tf.LayerVariable;

interface HostArray {
  readonly data: Float32Array;
  readonly shape: number[];
}

interface ConvFields {
  kernel?: LayerVariable;
  depthwiseKernel?: LayerVariable;
  bias?: LayerVariable | null;
  strides: number[];
  padding: string;
  dataFormat?: string;
  dilationRate: number | number[];
}

interface PoolFields {
  poolSize: number[];
  strides: number[];
  padding: string;
  dataFormat?: string;
}

interface BatchNormFields {
  axis: number;
  epsilon: number;
  /** Keras's: the weight of the old average (PyTorch's momentum is 1 − this). */
  momentum: number;
  gamma?: LayerVariable | null;
  beta?: LayerVariable | null;
  movingMean: LayerVariable;
  movingVariance: LayerVariable;
}

/** tfjs NHWC axis → the NCHW axis of the same dimension. */
const NCHW_AXIS = [0, 2, 3, 1];
const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];

const SUPPORTED = [
  'Conv2D', 'DepthwiseConv2D', 'BatchNormalization', 'Activation', 'ReLU', 'Softmax', 'MaxPooling2D', 'AveragePooling2D',
  'GlobalAveragePooling2D', 'ZeroPadding2D', 'Add', 'Multiply', 'Average', 'Concatenate', 'Dense', 'Flatten', 'Dropout',
  'GoogLeNetInputTransform',
];

function pair(value: number | number[]): [number, number] {
  return Array.isArray(value) ? [value[0], value[1] ?? value[0]] : [value, value];
}

/** A weight's values; `copy` unless the caller only reads them (the backend's own buffer may change under training). */
function hostArray(variable: LayerVariable, copy = true): HostArray {
  const tensor = variable.read();
  const data = tensor.dataSync() as Float32Array;
  return { data: copy ? data.slice() : data, shape: [...tensor.shape] };
}

/** A tfjs kernel [kh, kw, in, out] as ONNX's Conv weight [out, in, kh, kw] (a depthwise kernel is one with in = 1). */
function convWeight(kernel: Float32Array, kh: number, kw: number, inChannels: number, outChannels: number): Float32Array {
  const weight = new Float32Array(kernel.length);
  let source = 0;
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let c = 0; c < inChannels; c++) {
        for (let o = 0; o < outChannels; o++) weight[((o * inChannels + c) * kh + i) * kw + j] = kernel[source++];
      }
    }
  }
  return weight;
}

/** Pads before/after and output size of one spatial axis, as tfjs computes them ('same' pads the extra cell after). */
function spatial(size: number, kernel: number, stride: number, dilation: number, padding: string): { before: number; after: number; out: number } {
  const extent = (kernel - 1) * dilation + 1;
  if (padding === 'valid') return { before: 0, after: 0, out: Math.floor((size - extent) / stride) + 1 };
  const out = Math.ceil(size / stride);
  const total = Math.max(0, (out - 1) * stride + extent - size);
  return { before: Math.floor(total / 2), after: total - Math.floor(total / 2), out };
}

function broadcastShape(shapes: readonly (readonly number[])[]): number[] {
  const rank = Math.max(...shapes.map((shape) => shape.length));
  return Array.from({ length: rank }, (_, i) => Math.max(...shapes.map((shape) => shape[shape.length - rank + i] ?? 1)));
}

class Exporter {
  readonly builder: GraphBuilder;
  readonly layouts = new Map<string, Layout>();
  private readonly scalars = new Map<number, string>();

  constructor(name: string, readonly training?: TrainingHooks) {
    this.builder = new GraphBuilder(name);
  }

  /**
   * A weight of the layer writing `out`, as a constant named `out.suffix`
   * in ONNX's `shape` (`values` gives its data in that layout), or as the
   * training hooks make it.
   */
  weight(out: string, suffix: string, variable: LayerVariable, shape: readonly number[], layout: WeightLayout, values: () => Float32Array): string {
    const trained = this.training?.weight(this.builder, variable, shape, layout);
    return trained ?? this.builder.float32(`${out}.${suffix}`, values(), shape);
  }

  shape(value: string): readonly number[] {
    return this.builder.shape(value);
  }

  op(op: string, inputs: readonly string[], name: string, shape: readonly number[], attributes?: Record<string, Attribute>): string {
    return this.builder.op(op, inputs, name, shape, attributes);
  }

  /** A float scalar constant, shared by every node that needs it. */
  scalar(value: number): string {
    let name = this.scalars.get(value);
    if (name === undefined) {
      name = this.builder.float32(`const.${value}`, [value], []);
      this.scalars.set(value, name);
    }
    return name;
  }

  /** A tfjs activation (fused into a layer, or an Activation layer's) applied to x, named `out`. */
  activation(kind: string, x: string, out: string, step: LayerStep): string {
    const shape = this.shape(x);
    switch (kind) {
      case 'linear':
        return x;
      case 'relu':
        return this.op('Relu', [x], out, shape);
      case 'relu6':
        return this.op('Clip', [x, this.scalar(0), this.scalar(6)], out, shape);
      case 'sigmoid':
        return this.op('Sigmoid', [x], out, shape);
      case 'tanh':
        return this.op('Tanh', [x], out, shape);
      case 'elu':
        return this.op('Elu', [x], out, shape, { alpha: float(1) });
      case 'softplus':
        return this.op('Softplus', [x], out, shape);
      case 'softmax':
        // tfjs's softmax activation normalises the last (channel) axis.
        return this.op('Softmax', [x], out, shape, { axis: int(shape.length === 4 ? 1 : shape.length - 1) });
      default:
        throw new UserError(`Layer ${step.path} (${step.layer.getClassName()}) uses the activation ${kind}, which the ONNX engine cannot export; use relu, relu6, sigmoid, tanh, elu, softplus, softmax or linear.`);
    }
  }

  private channelsLast(step: LayerStep): void {
    const format = (step.layer as unknown as { dataFormat?: string }).dataFormat;
    if (format === 'channelsFirst') throw new UserError(`Layer ${step.path} (${step.layer.getClassName()}) is channelsFirst; the ONNX engine exports channelsLast (NHWC) models only.`);
  }

  private rank4(step: LayerStep, x: string): readonly number[] {
    const shape = this.shape(x);
    if (shape.length !== 4) throw new UserError(`Layer ${step.path} (${step.layer.getClassName()}) gets a ${shape.length}-D input; the ONNX engine exports it on 4-D images only.`);
    return shape;
  }

  /** Conv2D and DepthwiseConv2D, with their fused activation. */
  conv(step: LayerStep, x: string, out: string, skipSoftmax: boolean): string {
    this.channelsLast(step);
    const [n, channels, height, width] = this.rank4(step, x);
    const fields = step.layer as unknown as ConvFields;
    const depthwise = step.layer.getClassName() === 'DepthwiseConv2D';
    const variable = depthwise ? fields.depthwiseKernel! : fields.kernel!;
    const [kh, kw, inChannels, last] = variable.shape as number[];
    // tfjs kernels are [kh, kw, in, out] (depthwise: [kh, kw, in, multiplier], output channel c·multiplier + m, which is ONNX's group order).
    const outChannels = depthwise ? inChannels * last : last;
    const weightShape = [outChannels, depthwise ? 1 : inChannels, kh, kw];
    const weight = this.weight(out, 'weight', variable, weightShape, depthwise ? 'depthwise' : 'conv', () => convWeight(hostArray(variable, false).data, kh, kw, depthwise ? 1 : inChannels, outChannels));
    const inputs = [x, weight];
    const bias = fields.bias;
    if (bias) inputs.push(this.weight(out, 'bias', bias, [outChannels], 'plain', () => hostArray(bias).data));
    if (inChannels !== channels) throw new Error(`layer ${step.path}: kernel for ${inChannels} channels on a ${channels}-channel input`);
    const padding = fields.padding;
    if (padding !== 'same' && padding !== 'valid') throw new UserError(`Layer ${step.path} (${step.layer.getClassName()}) has padding ${padding}; the ONNX engine exports 'same' and 'valid'.`);
    const [sh, sw] = pair(fields.strides);
    const [dh, dw] = pair(fields.dilationRate);
    const rows = spatial(height, kh, sh, dh, padding);
    const cols = spatial(width, kw, sw, dw, padding);
    const kind = activationName(step.layer) ?? 'linear';
    const activation = skipSoftmax && kind === 'softmax' ? 'linear' : kind;
    const y = this.op('Conv', inputs, activation === 'linear' ? out : `${out}:conv`, [n, outChannels, rows.out, cols.out], {
      kernel_shape: ints([kh, kw]),
      strides: ints([sh, sw]),
      dilations: ints([dh, dw]),
      pads: ints([rows.before, cols.before, rows.after, cols.after]),
      group: int(depthwise ? inChannels : 1),
    });
    return this.activation(activation, y, out, step);
  }

  dense(step: LayerStep, x: string, out: string, skipSoftmax: boolean): string {
    const fields = step.layer as unknown as { kernel: LayerVariable; bias?: LayerVariable | null };
    const [inputs, units] = fields.kernel.shape as number[];
    const kernel = (shape: readonly number[], layout: WeightLayout) =>
      this.weight(out, 'weight', fields.kernel, shape, layout, () => (layout === 'pointwise' ? convWeight(hostArray(fields.kernel, false).data, 1, 1, inputs, units) : hostArray(fields.kernel).data));
    const biasVariable = fields.bias ?? undefined;
    const bias = biasVariable ? () => this.weight(out, 'bias', biasVariable, [units], 'plain', () => hostArray(biasVariable).data) : undefined;
    const shape = this.shape(x);
    const kind = activationName(step.layer) ?? 'linear';
    const activation = skipSoftmax && kind === 'softmax' ? 'linear' : kind;
    const name = activation === 'linear' ? out : `${out}:dense`;
    let y: string;
    if (shape.length === 2) {
      const operands = [x, kernel([inputs, units], 'plain')];
      if (bias) operands.push(bias());
      y = this.op('Gemm', operands, name, [shape[0], units]);
    } else if (shape.length === 4) {
      // On an image, tfjs's Dense mixes channels at every pixel: a 1×1 convolution.
      const operands = [x, kernel([units, inputs, 1, 1], 'pointwise')];
      if (bias) operands.push(bias());
      y = this.op('Conv', operands, name, [shape[0], units, shape[2], shape[3]], { kernel_shape: ints([1, 1]) });
    } else {
      const product = this.op('MatMul', [x, kernel([inputs, units], 'plain')], bias ? `${out}:matmul` : name, [...shape.slice(0, -1), units]);
      y = bias ? this.op('Add', [product, bias()], name, [...shape.slice(0, -1), units]) : product;
    }
    return this.activation(activation, y, out, step);
  }

  batchNorm(step: LayerStep, x: string, out: string): string {
    const fields = step.layer as unknown as BatchNormFields;
    const shape = this.shape(x);
    const axis = fields.axis < 0 ? fields.axis + shape.length : fields.axis;
    if (axis !== shape.length - 1 || (shape.length !== 4 && shape.length !== 2)) {
      throw new UserError(`Layer ${step.path} (BatchNormalization) normalises axis ${fields.axis} of a ${shape.length}-D input; the ONNX engine exports batch norm over the channels (last axis) of 4-D or 2-D inputs only.`);
    }
    const channels = fields.movingMean.shape[0] as number;
    const gamma = fields.gamma ?? undefined;
    const beta = fields.beta ?? undefined;
    const scale = gamma ? this.weight(out, 'weight', gamma, [channels], 'plain', () => hostArray(gamma).data) : this.builder.float32(`${out}.weight`, new Float32Array(channels).fill(1), [channels]);
    const offset = beta ? this.weight(out, 'bias', beta, [channels], 'plain', () => hostArray(beta).data) : this.builder.float32(`${out}.bias`, new Float32Array(channels), [channels]);
    if (this.training) return this.training.batchNorm(this.builder, x, { scale, offset, epsilon: fields.epsilon, momentum: 1 - fields.momentum, movingMean: fields.movingMean, movingVariance: fields.movingVariance }, out);
    const inputs = [
      x,
      scale,
      offset,
      this.builder.float32(`${out}.running_mean`, hostArray(fields.movingMean).data, [channels]),
      this.builder.float32(`${out}.running_var`, hostArray(fields.movingVariance).data, [channels]),
    ];
    return this.op('BatchNormalization', inputs, out, shape, { epsilon: float(fields.epsilon) });
  }

  pool(step: LayerStep, x: string, out: string, op: 'MaxPool' | 'AveragePool'): string {
    this.channelsLast(step);
    const [n, channels, height, width] = this.rank4(step, x);
    const fields = step.layer as unknown as PoolFields;
    const [kh, kw] = pair(fields.poolSize);
    const [sh, sw] = pair(fields.strides ?? fields.poolSize);
    const rows = spatial(height, kh, sh, 1, fields.padding);
    const cols = spatial(width, kw, sw, 1, fields.padding);
    const attributes: Record<string, Attribute> = {
      kernel_shape: ints([kh, kw]),
      strides: ints([sh, sw]),
      pads: ints([rows.before, cols.before, rows.after, cols.after]),
    };
    // tfjs's 'same' average leaves padded cells out of the count.
    if (op === 'AveragePool') attributes.count_include_pad = int(0);
    return this.op(op, [x], out, [n, channels, rows.out, cols.out], attributes);
  }

  globalAveragePool(step: LayerStep, x: string, out: string): string {
    this.channelsLast(step);
    const [n, channels] = this.rank4(step, x);
    const pooled = this.op('GlobalAveragePool', [x], `${out}:pool`, [n, channels, 1, 1]);
    return this.op('Flatten', [pooled], out, [n, channels], { axis: int(1) });
  }

  zeroPadding(step: LayerStep, x: string, out: string): string {
    this.channelsLast(step);
    const [n, channels, height, width] = this.rank4(step, x);
    const [[top, bottom], [left, right]] = (step.layer as unknown as { padding: [[number, number], [number, number]] }).padding;
    const pads = this.builder.int64(`${out}.pads`, [0, 0, top, left, 0, 0, bottom, right]);
    return this.op('Pad', [x, pads], out, [n, channels, height + top + bottom, width + left + right], { mode: { string: 'constant' } });
  }

  /** Add, Multiply and Average: element-wise over their inputs, left to right. */
  merge(step: LayerStep, xs: readonly string[], out: string, kind: string): string {
    const ranks = new Set(xs.map((x) => this.shape(x).length));
    if (ranks.size !== 1) throw new UserError(`Layer ${step.path} (${kind}) merges inputs of different ranks; the ONNX engine exports merges of equal-rank inputs only.`);
    const op = kind === 'Multiply' ? 'Mul' : 'Add';
    const shape = broadcastShape(xs.map((x) => this.shape(x)));
    const average = kind === 'Average';
    let y = xs[0];
    for (let i = 1; i < xs.length; i++) y = this.op(op, [y, xs[i]], i === xs.length - 1 && !average ? out : `${out}:${i}`, shape);
    return average ? this.op('Mul', [y, this.scalar(1 / xs.length)], out, shape) : y;
  }

  concatenate(step: LayerStep, xs: readonly string[], out: string): string {
    const shapes = xs.map((x) => this.shape(x));
    const rank = shapes[0].length;
    const tfjsAxis = (step.layer as unknown as { axis: number }).axis;
    const nhwcAxis = tfjsAxis < 0 ? tfjsAxis + rank : tfjsAxis;
    const axis = rank === 4 ? NCHW_AXIS[nhwcAxis] : nhwcAxis;
    const shape = [...shapes[0]];
    shape[axis] = shapes.reduce((sum, s) => sum + s[axis], 0);
    return this.op('Concat', xs, out, shape, { axis: int(axis) });
  }

  flatten(step: LayerStep, x: string, out: string): string {
    const shape = this.shape(x);
    if (shape.length === 4) {
      // tfjs flattens its NHWC tensor in (h, w, c) order (with dataFormat channelsFirst it first moves axis 1 last, which on our NHWC is (w, c, h)).
      const channelsFirst = (step.layer as unknown as { dataFormat?: string }).dataFormat === 'channelsFirst';
      const perm = channelsFirst ? [0, 3, 1, 2] : TO_NHWC;
      const ordered = this.op('Transpose', [x], `${out}:order`, perm.map((axis) => shape[axis]), { perm: ints(perm) });
      return this.op('Flatten', [ordered], out, [shape[0], shape[1] * shape[2] * shape[3]], { axis: int(1) });
    }
    return this.op('Flatten', [x], out, [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)], { axis: int(1) });
  }

  softmax(step: LayerStep, x: string, out: string): string {
    const shape = this.shape(x);
    const configured = (step.layer as unknown as { axis: number | number[] }).axis;
    const axes = Array.isArray(configured) ? configured : [configured];
    if (axes.length !== 1) throw new UserError(`Layer ${step.path} (Softmax) normalises over ${axes.length} axes; the ONNX engine exports a softmax over one axis only.`);
    const tfjsAxis = axes[0] < 0 ? axes[0] + shape.length : axes[0];
    return this.op('Softmax', [x], out, shape, { axis: int(shape.length === 4 ? NCHW_AXIS[tfjsAxis] : tfjsAxis) });
  }

  /**
   * GoogLeNet's input transform (torchvision's transform_input), a weightless
   * layer whose constants live in the plugin: read back per channel by
   * calling the layer, then checked to be affine.
   */
  channelAffine(step: LayerStep, x: string, out: string): string {
    const shape = this.rank4(step, x);
    const channels = shape[1];
    const { scale, shift } = tf.tidy(() => {
      const at = (value: number): Float32Array => Float32Array.from((step.layer.call(tf.fill([1, 1, 1, channels], value), {}) as tf.Tensor).dataSync());
      const [zero, one, two] = [at(0), at(1), at(2)];
      const slope = zero.map((z, c) => one[c] - z);
      if (zero.some((z, c) => Math.abs(z + 2 * slope[c] - two[c]) > 1e-5 * (1 + Math.abs(two[c])))) {
        throw new Error(`layer ${step.path} (${step.layer.getClassName()}) is not a per-channel affine map`);
      }
      return { scale: slope, shift: zero };
    });
    const scaled = this.op('Mul', [x, this.builder.float32(`${out}.scale`, scale, [1, channels, 1, 1])], `${out}:scaled`, shape);
    return this.op('Add', [scaled, this.builder.float32(`${out}.shift`, shift, [1, channels, 1, 1])], out, shape);
  }

  /** One layer call; `skipSoftmax` leaves out the softmax it applies. */
  layer(step: LayerStep, xs: readonly string[], out: string, skipSoftmax: boolean): string {
    const kind = step.layer.getClassName();
    const x = xs[0];
    if (!SUPPORTED.includes(kind)) {
      throw new UserError(`Layer ${step.path} is a ${kind}, which the ONNX engine cannot export (it exports ${SUPPORTED.join(', ')}); run this model with a tfjs backend (--backend cpu or wasm).`);
    }
    if (xs.length !== 1 && !['Add', 'Multiply', 'Average', 'Concatenate'].includes(kind)) {
      throw new UserError(`Layer ${step.path} (${kind}) is called on ${xs.length} inputs; the ONNX engine exports it on one.`);
    }
    switch (kind) {
      case 'Conv2D':
      case 'DepthwiseConv2D':
        return this.conv(step, x, out, skipSoftmax);
      case 'Dense':
        return this.dense(step, x, out, skipSoftmax);
      case 'BatchNormalization':
        return this.batchNorm(step, x, out);
      case 'Activation': {
        const name = activationName(step.layer) ?? 'linear';
        return this.activation(skipSoftmax && name === 'softmax' ? 'linear' : name, x, out, step);
      }
      case 'ReLU': {
        const maxValue = (step.layer as unknown as { maxValue?: number | null }).maxValue;
        if (maxValue === undefined || maxValue === null) return this.op('Relu', [x], out, this.shape(x));
        return this.op('Clip', [x, this.scalar(0), this.scalar(maxValue)], out, this.shape(x));
      }
      case 'Softmax':
        return skipSoftmax ? x : this.softmax(step, x, out);
      case 'MaxPooling2D':
        return this.pool(step, x, out, 'MaxPool');
      case 'AveragePooling2D':
        return this.pool(step, x, out, 'AveragePool');
      case 'GlobalAveragePooling2D':
        return this.globalAveragePool(step, x, out);
      case 'ZeroPadding2D':
        return this.zeroPadding(step, x, out);
      case 'Add':
      case 'Multiply':
      case 'Average':
        return this.merge(step, xs, out, kind);
      case 'Concatenate':
        return this.concatenate(step, xs, out);
      case 'Flatten':
        return this.flatten(step, x, out);
      case 'Dropout': {
        // Inference: dropout is the identity.
        const rate = (step.layer as unknown as { rate: number }).rate;
        return this.training && rate > 0 ? this.training.dropout(this.builder, x, rate, out) : x;
      }
      case 'GoogLeNetInputTransform':
        return this.channelAffine(step, x, out);
      default:
        throw new Error(`ONNX export: no converter for ${kind}`);
    }
  }
}

/** The NHWC shape of a value of `shape` in `layout`. */
export function nhwcShape(shape: readonly number[], layout: Layout): number[] {
  return layout === 'nchw' ? TO_NHWC.map((axis) => shape[axis]) : [...shape];
}

/** Checks the computed shape against the one tfjs infers, where the layer has exactly one. */
function checkShape(step: LayerStep, shape: readonly number[], layout: Layout): void {
  const layer = step.layer as unknown as { inboundNodes: unknown[]; outputShape: (number | null)[] | (number | null)[][] };
  if (layer.inboundNodes.length !== 1) return;
  const expected = layer.outputShape;
  if (!Array.isArray(expected) || Array.isArray(expected[0])) return;
  const mine = nhwcShape(shape, layout);
  const same = expected.length === mine.length && (expected as (number | null)[]).every((size, i) => size === null || size === mine[i]);
  if (!same) throw new Error(`ONNX export of layer ${step.path}: shape [${mine.join(', ')}] where tfjs has [${expected.join(', ')}]`);
}

export function exportLayersModel(model: tf.LayersModel, options: ExportOptions): ExportedGraph {
  const { batch, leaveOutSoftmax = false, valueName = torchValueName, training } = options;
  if (!Number.isInteger(batch) || batch < 1) throw new Error(`ONNX export needs a positive integer batch size, not ${batch}`);
  if (model.inputs.length !== 1) throw new UserError(`Model ${model.name} takes ${model.inputs.length} inputs; the ONNX engine exports single-input models only.`);
  const inputShape = model.inputs[0].shape.slice(1);
  if (inputShape.some((size) => size === null)) {
    throw new UserError(`Model ${model.name} takes inputs of shape [${inputShape.map((s) => s ?? '?').join(', ')}]; the ONNX engine needs a fixed input size.`);
  }
  const layerGraph = compileLayerGraph(model);
  const exporter = new Exporter(model.name, training);
  const { builder, layouts } = exporter;
  const layoutOf = (value: string): Layout => (builder.shape(value).length === 4 ? 'nchw' : 'flat');

  const input = builder.addInput('input', [batch, ...(inputShape as number[])]);
  const values = new Map<string, string>();
  if (inputShape.length === 3) {
    const [height, width, channels] = inputShape as number[];
    values.set(layerGraph.inputs[0], builder.op('Transpose', [input], 'input:nchw', [batch, channels, height, width], { perm: ints(TO_NCHW) }));
  } else {
    values.set(layerGraph.inputs[0], input);
  }
  layouts.set(input, 'flat');

  const outputKey = layerGraph.outputs[0];
  const outputProducer = producerIndex(layerGraph, outputKey);
  const producer = outputProducer >= 0 ? layerGraph.steps[outputProducer].layer : undefined;
  const unsoftmaxed = leaveOutSoftmax && producer !== undefined && (isSoftmaxLayer(producer) || activationName(producer) === 'softmax') ? outputProducer : -1;

  const nodeLayers: (string | undefined)[] = builder.nodes.map(() => undefined);
  layerGraph.steps.forEach((step, i) => {
    if (step.outputs.length !== 1) throw new UserError(`Layer ${step.path} (${step.layer.getClassName()}) has ${step.outputs.length} outputs; the ONNX engine exports single-output layers only.`);
    const xs = step.inputs.map((key) => values.get(key) as string);
    const value = exporter.layer(step, xs, valueName(step.path), i === unsoftmaxed);
    while (nodeLayers.length < builder.nodes.length) nodeLayers.push(step.path);
    const layout = layoutOf(value);
    checkShape(step, builder.shape(value), layout);
    layouts.set(value, layout);
    values.set(step.outputs[0], value);
  });
  for (const value of values.values()) if (!layouts.has(value)) layouts.set(value, layoutOf(value));

  const layerValues = new Map<string, string>();
  for (const [name, calls] of layerGraph.named) {
    if (calls.length === 1 && calls[0].length === 1) layerValues.set(name, values.get(calls[0][0]) as string);
  }

  // Class scores as tfjs gives them: a score map is flattened in NHWC order, as the tfjs engine does.
  let output = values.get(outputKey) as string;
  const outShape = builder.shape(output);
  if (outShape.length !== 2) {
    const nhwc = toNhwc(builder, output, layouts.get(output) ?? 'flat');
    output = builder.op('Flatten', [nhwc], 'scores', [outShape[0], outShape.slice(1).reduce((a, b) => a * b, 1)], { axis: int(1) });
    layouts.set(output, 'flat');
  }
  builder.addOutput(output);
  keepPadsBeforePoolsExact(builder);
  return { graph: builder.build(), input, output, layerValues, layouts, layerGraph, nodeLayers };
}

function intsAttribute(node: GraphNode, name: string): readonly number[] | undefined {
  const attribute = node.attributes?.[name];
  return attribute !== undefined && 'ints' in attribute ? attribute.ints : undefined;
}

/**
 * ONNX Runtime's PadFusion folds a zero Pad into the pads of the one pool
 * that reads it, although MaxPool pads with −∞ and AveragePool with
 * count_include_pad 0 leaves pads out of its count, and the session fails
 * outright when a folded pad reaches the kernel size. Where folding is exact
 * (a max pool over values ≥ 0, such as after a ReLU as in torchvision's
 * padded pools; a valid average pool, told to count pads) it is left to
 * happen; elsewhere the Pad pads with −0, equal to 0 in every sum and
 * comparison but not the all-zero bytes PadFusion looks for. The export runs
 * this on the forward graph; run it again on a graph that feeds a layer from
 * a graph input (the producer it relied on may be gone).
 */
export function keepPadsBeforePoolsExact(builder: GraphBuilder): void {
  const { nodes } = builder;
  const readers = new Map<string, number[]>();
  nodes.forEach((node, i) => node.inputs.forEach((value) => readers.set(value, [...(readers.get(value) ?? []), i])));
  const producers = new Map<string, GraphNode>();
  for (const node of nodes) for (const value of node.outputs) producers.set(value, node);
  const outputs = new Set(builder.outputs.map((info) => info.name));
  const nonNegative = (value: string): boolean => {
    const producer = producers.get(value);
    switch (producer?.op) {
      case 'Relu':
        return true;
      case 'Clip': {
        const min = builder.initializers.get(producer.inputs[1]);
        return min !== undefined && min.data.length === 1 && Number(min.data[0]) >= 0;
      }
      case 'Concat':
        return producer.inputs.every(nonNegative);
      case 'MaxPool':
        return nonNegative(producer.inputs[0]);
      case 'Pad': {
        const fill = producer.inputs[2] ? builder.initializers.get(producer.inputs[2]) : undefined;
        return (!producer.inputs[2] || (fill !== undefined && Number(fill.data[0]) >= 0)) && nonNegative(producer.inputs[0]);
      }
      default:
        return false;
    }
  };
  let negativeZero: string | undefined;
  nodes.forEach((pad, i) => {
    if (pad.op !== 'Pad' || pad.inputs.length > 2 || outputs.has(pad.outputs[0])) return;
    const reading = readers.get(pad.outputs[0]) ?? [];
    if (reading.length !== 1) return;
    const pool = nodes[reading[0]];
    if (pool.op !== 'MaxPool' && pool.op !== 'AveragePool') return;
    const padValues = builder.initializers.get(pad.inputs[1])?.data;
    const own = intsAttribute(pool, 'pads') ?? [0, 0, 0, 0];
    const kernel = intsAttribute(pool, 'kernel_shape') ?? [];
    const folded = padValues ? [2, 3, 6, 7].map((axis, j) => Number(padValues[axis]) + own[j]) : [];
    const fits = folded.length === 4 && folded.every((size, j) => size < kernel[j % 2]);
    if (fits && pool.op === 'MaxPool' && nonNegative(pad.inputs[0])) return;
    if (fits && pool.op === 'AveragePool' && own.every((size) => size === 0)) {
      nodes[reading[0]] = { ...pool, attributes: { ...pool.attributes, count_include_pad: int(1) } };
      return;
    }
    negativeZero ??= builder.float32('const.-0', [-0], []);
    nodes[i] = { ...pad, inputs: [...pad.inputs, negativeZero] };
  });
}

/** The NHWC form of `value`: a Transpose of an NCHW value, the value itself otherwise. */
export function toNhwc(builder: GraphBuilder, value: string, layout: Layout): string {
  if (layout !== 'nchw') return value;
  const existing = builder.nodes.find((node) => node.op === 'Transpose' && node.inputs[0] === value && String(node.attributes?.perm && 'ints' in node.attributes.perm ? node.attributes.perm.ints : '') === String(TO_NHWC));
  if (existing) return existing.outputs[0];
  return builder.op('Transpose', [value], `${value}:nhwc`, nhwcShape(builder.shape(value), layout), { perm: ints(TO_NHWC) });
}

/** A value in the graph's internal `layout` from an NHWC one (e.g. activations fed in at a layer). */
export function fromNhwc(builder: GraphBuilder, value: string, layout: Layout): string {
  if (layout !== 'nchw') return value;
  const shape = builder.shape(value);
  return builder.op('Transpose', [value], `${value}:nchw`, TO_NCHW.map((axis) => shape[axis]), { perm: ints(TO_NCHW) });
}

/**
 * Adds graph outputs holding `values` (internal layout, as layerValues gives
 * them) in NHWC, as the tfjs engine returns layer outputs; returns the output
 * names, in order.
 */
export function addNhwcOutputs(builder: GraphBuilder, layouts: ReadonlyMap<string, Layout>, values: readonly string[]): string[] {
  const inputs = new Set(builder.inputs.map((info) => info.name));
  return values.map((value) => {
    const layout = layouts.get(value);
    if (layout === undefined) throw new Error(`graph ${builder.name}: no layout recorded for ${value}`);
    let nhwc = toNhwc(builder, value, layout);
    // ONNX names a value once as an output; a graph input comes out through an Identity.
    if (inputs.has(nhwc)) nhwc = builder.op('Identity', [nhwc], `${nhwc}:out`, builder.shape(nhwc));
    if (!builder.outputs.some((info) => info.name === nhwc)) builder.addOutput(nhwc);
    return nhwc;
  });
}
