/**
 * Layer calls whose backward pass yields the gradient for the layer's input
 * only. tfjs's tape already skips the weight gradient of ops whose gradient is
 * registered per input (conv2d, depthwiseConv2d, separableConv2d, …), but the
 * fused conv2d and matMul that Conv2D and Dense layers call compute every
 * gradient at once — dx, the filter gradient (Conv2DBackpropFilter) and the
 * bias gradient — whenever the input needs one. Those layers, and batch norm
 * (whose gradient builds shared terms for its weight gradients up front), run
 * here inside a custom gradient that reads the weights as constants; every
 * other layer runs its own call.
 *
 * Methods with modified backward rules (guided backprop, DeepLift) replace
 * element-wise activations through `CallOptions.activation`: it reaches
 * Activation and ReLU layers and the activation fused into Conv2D and Dense.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import type { Kwargs, LayerStep } from './layer-graph.ts';

interface Activation {
  getClassName(): string;
  apply(x: tf.Tensor): tf.Tensor;
}

interface LayerVariable {
  read(): tf.Tensor;
}

interface ConvFields {
  rank: number;
  kernel: LayerVariable;
  bias?: LayerVariable | null;
  strides: number[];
  padding: string;
  dataFormat: string;
  dilationRate: number | number[];
  activation: Activation;
}

interface DenseFields {
  kernel: LayerVariable;
  bias?: LayerVariable | null;
  activation: Activation;
}

interface BatchNormFields {
  axis: number;
  epsilon: number;
  gamma?: LayerVariable | null;
  movingVariance: LayerVariable;
}

/** Stands in for some element-wise activations, e.g. a ReLU whose backward pass follows another rule. */
export interface ActivationOverride {
  /** Whether `apply` replaces the activation tfjs calls `name` (relu, sigmoid, …). */
  replaces(name: string): boolean;
  /** The activation of x, as a tensor whose gradient is the override's. */
  apply(name: string, x: tf.Tensor): tf.Tensor;
}

export interface CallOptions {
  /** Run Conv2D, Dense and BatchNormalization with a gradient for their input only. */
  readonly constantWeights: boolean;
  /** Leave out a final softmax, so the output is the logits. */
  readonly withoutSoftmax: boolean;
  /** Activations to replace (absent: every layer keeps its own). */
  readonly activation?: ActivationOverride;
}

function isVariable(value: unknown): value is LayerVariable {
  return typeof (value as LayerVariable | undefined)?.read === 'function';
}

function isActivation(value: unknown): value is Activation {
  return typeof (value as Activation | undefined)?.apply === 'function' && typeof (value as Activation).getClassName === 'function';
}

function pair(value: number | number[]): [number, number] {
  return Array.isArray(value) ? [value[0], value[1] ?? value[0]] : [value, value];
}

/** The activation a layer applies to its output, as tfjs names it. */
export function activationName(layer: tf.layers.Layer): string | undefined {
  const activation = (layer as unknown as { activation?: unknown }).activation;
  return isActivation(activation) ? activation.getClassName() : undefined;
}

/** Whether the layer's whole job is a softmax (Softmax, or Activation('softmax')). */
export function isSoftmaxLayer(layer: tf.layers.Layer): boolean {
  const kind = layer.getClassName();
  return kind === 'Softmax' || (kind === 'Activation' && activationName(layer) === 'softmax');
}

/** The fused kernels fold in only these activations; anything else runs after, on the tape. */
function fusedActivation(name: string): 'relu' | 'linear' | undefined {
  return name === 'relu' || name === 'linear' ? name : undefined;
}

/** Runs `forward` on the tape as one op whose gradient is `backward(dy)` for x alone: the weights it reads are constants. */
function withInputGradient<T extends tf.Tensor>(x: T, forward: (x: T, save: tf.GradSaveFunc) => tf.Tensor, backward: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor): tf.Tensor {
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => ({
    value: forward(input as T, save as tf.GradSaveFunc),
    gradFunc: backward,
  }));
  return op(x);
}

function reluMask(dy: tf.Tensor, y: tf.Tensor): tf.Tensor {
  return tf.mul(dy, tf.step(y));
}

/**
 * A dilated filter written out with zeros between its taps: convolving with it
 * at rate 1 equals the dilated convolution, and tfjs's input-gradient kernel
 * only takes rate 1.
 */
function dilateFilter(filter: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [kh, kw, inC, outC] = filter.shape;
  const spread = tf.pad(tf.reshape(filter, [kh, 1, kw, 1, inC, outC]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]]);
  return tf.slice(tf.reshape(spread, [kh * dh, kw * dw, inC, outC]) as tf.Tensor4D, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, inC, outC]);
}

function conv2dConstantFilter(x: tf.Tensor4D, fields: ConvFields, activation: 'relu' | 'linear'): tf.Tensor4D {
  const filter = fields.kernel.read() as tf.Tensor4D;
  const bias = fields.bias?.read();
  const strides = pair(fields.strides);
  const dilations = pair(fields.dilationRate);
  const pad = fields.padding === 'same' ? 'same' : 'valid';
  const xShape = x.shape;
  const dilated = dilations[0] > 1 || dilations[1] > 1;
  const forward = (input: tf.Tensor4D, save: tf.GradSaveFunc): tf.Tensor => {
    // The kernel itself, not tf.fused.conv2d: under a tape that op splits a
    // relu conv into three kernels (conv, add, relu) so it can differentiate them.
    const inputs: tf.NamedTensorMap = bias === undefined ? { x: input, filter } : { x: input, filter, bias };
    const y = tf.engine().runKernel<tf.Tensor4D>(tf.FusedConv2D, inputs, { strides, pad, dataFormat: 'NHWC', dilations, activation });
    if (activation === 'relu') save([y]);
    return y;
  };
  const backward = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor => {
    const dz = (activation === 'relu' ? reluMask(dy, saved[0]) : dy) as tf.Tensor4D;
    // tfjs allows dilation only with unit strides, so the rate-1 form needs stride 1 as well.
    return tf.conv2dTranspose(dz, dilated ? dilateFilter(filter, dilations) : filter, xShape, dilated ? 1 : strides, pad);
  };
  return withInputGradient(x, forward, backward) as tf.Tensor4D;
}

function callConv2D(layer: tf.layers.Layer, x: tf.Tensor, withoutSoftmax: boolean, override?: ActivationOverride): tf.Tensor | undefined {
  const fields = layer as unknown as Partial<ConvFields>;
  if (fields.rank !== 2 || x.rank !== 4 || !isVariable(fields.kernel) || !isActivation(fields.activation) || !Array.isArray(fields.strides)) return undefined;
  if (fields.padding !== 'same' && fields.padding !== 'valid') return undefined;
  const conv = fields as ConvFields;
  const name = conv.activation.getClassName();
  const skip = name === 'linear' || (withoutSoftmax && name === 'softmax');
  const replaced = !skip && override?.replaces(name) === true;
  const fused = skip || replaced ? 'linear' : fusedActivation(name);
  const channelsFirst = conv.dataFormat === 'channelsFirst';
  let y: tf.Tensor = conv2dConstantFilter((channelsFirst ? tf.transpose(x, [0, 2, 3, 1]) : x) as tf.Tensor4D, conv, fused ?? 'linear');
  if (channelsFirst) y = tf.transpose(y, [0, 3, 1, 2]);
  if (replaced) return override!.apply(name, y);
  return fused === undefined ? conv.activation.apply(y) : y;
}

function callDense(layer: tf.layers.Layer, x: tf.Tensor, withoutSoftmax: boolean, override?: ActivationOverride): tf.Tensor | undefined {
  const fields = layer as unknown as Partial<DenseFields>;
  if (x.rank < 2 || !isVariable(fields.kernel) || !isActivation(fields.activation)) return undefined;
  const dense = fields as DenseFields;
  const kernel = dense.kernel.read() as tf.Tensor2D;
  const bias = dense.bias?.read();
  const name = dense.activation.getClassName();
  const skip = name === 'linear' || (withoutSoftmax && name === 'softmax');
  const replaced = !skip && override?.replaces(name) === true;
  const activation = skip || replaced ? 'linear' : fusedActivation(name) ?? 'linear';
  const [inputs, units] = kernel.shape;
  const flat = x.rank === 2 ? (x as tf.Tensor2D) : tf.reshape(x, [-1, inputs]) as tf.Tensor2D;
  const forward = (input: tf.Tensor2D, save: tf.GradSaveFunc): tf.Tensor => {
    const y = tf.fused.matMul({ a: input, b: kernel, bias, activation });
    if (activation === 'relu') save([y]);
    return y;
  };
  const backward = (dy: tf.Tensor, saved: tf.Tensor[]): tf.Tensor => tf.matMul(activation === 'relu' ? reluMask(dy, saved[0]) : dy, kernel, false, true);
  let y = withInputGradient(flat, forward, backward);
  if (x.rank !== 2) y = tf.reshape(y, [...x.shape.slice(0, -1), units]);
  if (replaced) return override!.apply(name, y);
  return skip || fusedActivation(name) !== undefined ? y : dense.activation.apply(y);
}

/**
 * Inference batch norm is y = x·s + t per channel with s = γ/√(σ²+ε): the
 * forward stays the layer's own, the backward is dy·s alone. (tfjs's
 * FusedBatchNorm gradient first builds x−μ, dy·γ and a tiled 1/√(σ²+ε) for
 * weight gradients, even when only dx is asked for.)
 */
function callBatchNorm(layer: tf.layers.Layer, x: tf.Tensor, kwargs: Kwargs): tf.Tensor | undefined {
  const fields = layer as unknown as Partial<BatchNormFields>;
  if (typeof fields.axis !== 'number' || typeof fields.epsilon !== 'number' || !isVariable(fields.movingVariance)) return undefined;
  const norm = fields as BatchNormFields;
  const axis = norm.axis < 0 ? norm.axis + x.rank : norm.axis;
  const gamma = isVariable(norm.gamma) ? norm.gamma.read() : undefined;
  const variance = norm.movingVariance.read();
  const backward = (dy: tf.Tensor): tf.Tensor => {
    if (axis === x.rank - 1) {
      // dy·s as a batch norm of dy with μ = 0: one kernel on every backend,
      // and on cpu several times faster than a broadcasting multiply.
      return tf.batchNorm(dy, tf.zeros(variance.shape), variance, undefined, gamma, norm.epsilon);
    }
    const inverseStd = tf.rsqrt(tf.add(variance, norm.epsilon));
    const scale = gamma === undefined ? inverseStd : tf.mul(gamma, inverseStd);
    return tf.mul(dy, tf.reshape(scale, x.shape.map((size, i) => (i === axis ? size : 1))));
  };
  return withInputGradient(x, (input) => layer.call(input, kwargs) as tf.Tensor, backward);
}

/** An Activation layer, or a ReLU layer without a ceiling, whose activation the override replaces. */
function callOverridden(layer: tf.layers.Layer, x: tf.Tensor, override: ActivationOverride): tf.Tensor | undefined {
  const kind = layer.getClassName();
  const maxValue = (layer as unknown as { maxValue?: number | null }).maxValue;
  const name = kind === 'Activation' ? activationName(layer) : kind === 'ReLU' && (maxValue === undefined || maxValue === null) ? 'relu' : undefined;
  return name !== undefined && override.replaces(name) ? override.apply(name, x) : undefined;
}

/** Runs one layer call in inference mode (batch norm on moving statistics, dropout off). */
export function callLayer(step: LayerStep, inputs: tf.Tensor[], options: CallOptions): tf.Tensor[] {
  const { layer } = step;
  const kwargs: Kwargs = { ...step.callArgs, training: false };
  if (options.withoutSoftmax && isSoftmaxLayer(layer)) return inputs;
  let output: tf.Tensor | undefined;
  const override = options.activation;
  if (inputs.length === 1) {
    const kind = layer.getClassName();
    const custom = override !== undefined;
    if (kind === 'Conv2D' && (options.constantWeights || options.withoutSoftmax || custom)) output = callConv2D(layer, inputs[0], options.withoutSoftmax, override);
    else if (kind === 'Dense' && (options.constantWeights || options.withoutSoftmax || custom)) output = callDense(layer, inputs[0], options.withoutSoftmax, override);
    else if (kind === 'BatchNormalization' && options.constantWeights) output = callBatchNorm(layer, inputs[0], kwargs);
    else if (custom) output = callOverridden(layer, inputs[0], override);
  }
  if (output !== undefined) return [output];
  const own = activationName(layer);
  if (override && own !== undefined && override.replaces(own) && !(options.withoutSoftmax && own === 'softmax')) {
    throw new UserError(`Layer ${step.path} (${layer.getClassName()}) applies ${own} inside itself, where this method's backward rule for ${own} cannot reach it; give the layer a separate Activation layer.`);
  }
  if (options.withoutSoftmax && activationName(layer) === 'softmax') {
    throw new Error(`Cannot leave out the softmax of layer ${step.path} (${layer.getClassName()}): give its output a separate Activation or Softmax layer.`);
  }
  const result = layer.call(inputs.length === 1 ? inputs[0] : inputs, kwargs);
  return Array.isArray(result) ? result : [result];
}
