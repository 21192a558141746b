/**
 * Backward rules of the weighted ops: Conv (input gradient only; weights are
 * constants) and inference BatchNormalization.
 *
 * A convolution's input gradient is computed one of two ways, whichever ONNX
 * Runtime runs faster (measured, 1 thread, batch 8): with unit strides, a
 * Conv of dy with the kernel flipped and its channel axes swapped per group
 * — 3×3 64→64 at 56²: 13 ms against 22 ms for ConvTranspose; a depthwise
 * 3×3 at 112²: 19 ms against 88 ms, the speed of the forward — and otherwise
 * (strides, 1×1 kernels) ConvTranspose, which beats zero-inserting dy before
 * a Conv by 3–15×.
 *
 * Batch norm's backward is dy·γ/√(σ²+ε) per channel; where a convolution
 * alone feeds the batch norm, that factor goes into the convolution's
 * backward weights instead of a pass over dy.
 */
import type { BackwardContext, BackwardRule, Gradient } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { floatAttribute, intAttribute, intsAttribute, transposedEnds, windowOf, type Window } from './node-attributes.ts';

function constantWeightsOnly(node: GraphNode, wants: readonly boolean[]): void {
  if (wants.some((wanted, i) => wanted && i > 0)) {
    throw new Error(`${node.op} ${node.name ?? node.outputs[0]}: its weights depend on the input; gradients are built for constant weights only`);
  }
}

/** Weights [M, ...] with output channel m multiplied by scale[m]. */
function scaleOutputChannels(weights: Float32Array, outputs: number, scale: Float32Array): Float32Array {
  const per = weights.length / outputs;
  const scaled = new Float32Array(weights.length);
  for (let m = 0; m < outputs; m++) for (let i = 0; i < per; i++) scaled[m * per + i] = weights[m * per + i] * scale[m];
  return scaled;
}

/**
 * The kernel of the transposed convolution as a convolution: W [M, C/g, ...k]
 * becomes W' [C, M/g, ...k], in each group the two channel axes swapped and
 * every spatial axis reversed (which reverses the flattened spatial block).
 */
function flippedKernel(weights: Float32Array, shape: readonly number[], group: number): { data: Float32Array; shape: number[] } {
  const [outputs, perGroupIn] = shape;
  const spatial = shape.slice(2).reduce((a, b) => a * b, 1);
  const perGroupOut = outputs / group;
  const inputs = perGroupIn * group;
  const data = new Float32Array(weights.length);
  for (let g = 0; g < group; g++) {
    for (let m = 0; m < perGroupOut; m++) {
      for (let c = 0; c < perGroupIn; c++) {
        const from = ((g * perGroupOut + m) * perGroupIn + c) * spatial;
        const to = ((g * perGroupIn + c) * perGroupOut + m) * spatial;
        for (let s = 0; s < spatial; s++) data[to + s] = weights[from + spatial - 1 - s];
      }
    }
  }
  return { data, shape: [inputs, perGroupOut, ...shape.slice(2)] };
}

/** Pads of the flipped-kernel convolution, or undefined where it does not apply (strides, pads beyond the kernel). */
function flippedPads(window: Window, inputShape: readonly number[], outputShape: readonly number[]): number[] | undefined {
  if (window.strides.some((s) => s !== 1)) return undefined;
  const { after } = transposedEnds(window, inputShape, outputShape);
  const reach = window.kernel.map((k, i) => (k - 1) * window.dilations[i]);
  const before = reach.map((r, i) => r - window.before[i]);
  const end = reach.map((r, i) => r - after[i]);
  return [...before, ...end].every((p) => p >= 0) ? [...before, ...end] : undefined;
}

export const convBackward: BackwardRule = (ctx, node, dy, wants) => {
  constantWeightsOnly(node, wants);
  const [x, w] = node.inputs;
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const wShape = ctx.shape(w);
  const group = intAttribute(node, 'group', 1);
  const window = windowOf(node, xShape, yShape, intsAttribute(node, 'kernel_shape') ?? wShape.slice(2));
  const given = ctx.floats(w);
  const weights = given && dy.channelScale ? scaleOutputChannels(given, wShape[0], dy.channelScale) : given;
  const g = weights ? dy.value : ctx.materialize(dy);
  const name = `${x}.grad.${node.name ?? node.outputs[0]}`;
  const pointwise = group === 1 && window.kernel.every((k) => k === 1);
  const pads = weights && !pointwise ? flippedPads(window, xShape, yShape) : undefined;
  if (weights && pads) {
    const flipped = flippedKernel(weights, wShape, group);
    const value = ctx.op('Conv', [g, ctx.float32(`${w}.flipped`, flipped.data, flipped.shape)], name, xShape, {
      kernel_shape: { ints: window.kernel },
      dilations: { ints: window.dilations },
      pads: { ints: pads },
      group: { int: group },
    });
    ctx.markCroppable(value);
    return [{ value }];
  }
  const kernel = weights && weights !== given ? ctx.float32(`${w}.scaled`, weights, wShape) : w;
  const { after, outputPadding } = transposedEnds(window, xShape, yShape);
  return [{
    value: ctx.op('ConvTranspose', [g, kernel], name, xShape, {
      kernel_shape: { ints: window.kernel },
      strides: { ints: window.strides },
      dilations: { ints: window.dilations },
      pads: { ints: [...window.before, ...after] },
      group: { int: group },
      ...(outputPadding.some((p) => p > 0) ? { output_padding: { ints: outputPadding } } : {}),
    }),
  }];
};

/** γ/√(σ²+ε) per channel, in float32 steps as tfjs computes it. */
function batchNormScale(ctx: BackwardContext, node: GraphNode): Float32Array {
  const gamma = ctx.floats(node.inputs[1]);
  const variance = ctx.floats(node.inputs[4]);
  if (!gamma || !variance) throw new Error(`BatchNormalization ${node.name ?? node.outputs[0]}: scale and variance must be constants`);
  const epsilon = Math.fround(floatAttribute(node, 'epsilon', 1e-5));
  return Float32Array.from(gamma, (scale, c) => Math.fround(scale * Math.fround(1 / Math.sqrt(Math.fround(variance[c] + epsilon)))));
}

/** Whether x's gradient may stay a pending per-channel factor for the Conv that writes it. */
function foldsIntoConv(ctx: BackwardContext, x: string): boolean {
  const producer = ctx.index.producer(x);
  return producer?.op === 'Conv' && ctx.floats(producer.inputs[1]) !== undefined && ctx.index.consumers(x).length === 1 && !ctx.requested.has(x);
}

export const batchNormBackward: BackwardRule = (ctx, node, dy, wants) => {
  constantWeightsOnly(node, wants);
  const x = node.inputs[0];
  const scale = batchNormScale(ctx, node);
  const combined = dy.channelScale ? scale.map((s, c) => s * (dy.channelScale as Float32Array)[c]) : scale;
  const pending: Gradient = { value: dy.value, channelScale: combined };
  return [foldsIntoConv(ctx, x) ? pending : { value: ctx.materialize(pending) }];
};
