/**
 * Backward rules of the weighted ops: Conv, BatchNormalization,
 * LayerNormalization and InstanceNormalization — with
 * constant weights for explainers (input gradients only), and with weights
 * as graph values for training (onnx/training-graph.ts): then the kernel and
 * bias get gradients too, and a batch norm that normalises with its batch's
 * own statistics differentiates through them.
 *
 * A convolution's input gradient is computed one of two ways, whichever ONNX
 * Runtime runs faster (measured, 1 thread, batch 8): with unit strides, a
 * Conv of dy with the kernel flipped and its channel axes swapped per group
 * — 3×3 64→64 at 56²: 13 ms against 22 ms for ConvTranspose; a depthwise
 * 3×3 at 112²: 19 ms against 88 ms, the speed of the forward — and otherwise
 * (strides, and 1×1 kernels that are constants) ConvTranspose, which beats
 * zero-inserting dy before a Conv by 3–15×. A 1×1 kernel that is a graph
 * value (training) takes the Conv too: MobileNetV2's 1×1 input gradients at
 * batch 8 ran 1.1–1.4× faster so on 1 and 2 threads (its kernel transposed
 * in the graph costs next to nothing).
 *
 * Batch norm's backward is dy·γ/√(σ²+ε) per channel; where a convolution
 * alone feeds the batch norm, that factor goes into the convolution's
 * backward weights instead of a pass over dy.
 *
 * Layer norm normalises with each sample's own statistics over its last
 * axes, so its backward recomputes them (see layerNormBackward); instance
 * norm likewise per sample and channel (instanceNormBackward).
 *
 * ConvTranspose gets an input gradient only (its weights none): a Conv with
 * the same weights and geometry (convTransposeBackward).
 */
import { undifferentiable, type BackwardContext, type BackwardRule, type Gradient } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { reduceTo } from './backward-elementwise.ts';
import { floatAttribute, intAttribute, intsAttribute, stringAttribute, transposedEnds, windowOf, type Window } from './node-attributes.ts';

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

/**
 * The flipped kernel of a weight that is a graph value (training): the same
 * rearrangement as flippedKernel, as ops — spatial axes reversed by Slice
 * with step −1, the channel axes swapped per group by Transpose.
 */
function flippedKernelValue(ctx: BackwardContext, w: string, shape: readonly number[], group: number): string {
  const [outputs, perGroupIn, ...kernel] = shape;
  const spatialAxes = kernel.map((_, i) => i + 2);
  // A 1×1 kernel reversed is itself.
  const reversed = kernel.every((k) => k === 1) ? w : ctx.op('Slice', [
    w,
    ctx.int64(`${w}.flip.starts`, spatialAxes.map(() => -1)),
    ctx.int64(`${w}.flip.ends`, spatialAxes.map(() => -(2 ** 62))),
    ctx.int64(`${w}.flip.axes`, spatialAxes),
    ctx.int64(`${w}.flip.steps`, spatialAxes.map(() => -1)),
  ], `${w}.reversed`, shape);
  const perGroupOut = outputs / group;
  if (perGroupOut === 1 && perGroupIn === 1) return reversed;
  const grouped = ctx.reshape(reversed, [group, perGroupOut, perGroupIn, ...kernel], `${w}.grouped`);
  const swapped = ctx.op('Transpose', [grouped], `${w}.swapped`, [group, perGroupIn, perGroupOut, ...kernel], { perm: { ints: [0, 2, 1, ...kernel.map((_, i) => i + 3)] } });
  return ctx.reshape(swapped, [perGroupIn * group, perGroupOut, ...kernel], `${w}.flipped`);
}

function convInputGradient(ctx: BackwardContext, node: GraphNode, dy: Gradient, window: Window, group: number): Gradient {
  const [x, w] = node.inputs;
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const wShape = ctx.shape(w);
  const given = ctx.floats(w);
  const weights = given && dy.channelScale ? scaleOutputChannels(given, wShape[0], dy.channelScale) : given;
  const g = weights ? dy.value : ctx.materialize(dy);
  const name = `${x}.grad.${node.name ?? node.outputs[0]}`;
  // 1×1 kernels with constant weights stay ConvTranspose (see the file's comment); graph-valued ones take the Conv.
  const pointwise = group === 1 && window.kernel.every((k) => k === 1);
  const pads = !pointwise || !weights ? flippedPads(window, xShape, yShape) : undefined;
  if (pads) {
    let kernel: string;
    if (weights) {
      const flipped = flippedKernel(weights, wShape, group);
      kernel = ctx.float32(`${w}.flipped`, flipped.data, flipped.shape);
    } else {
      kernel = ctx.memo(`flipped:${w}`, () => flippedKernelValue(ctx, w, wShape, group));
    }
    const value = ctx.op('Conv', [g, kernel], name, xShape, {
      kernel_shape: { ints: window.kernel },
      dilations: { ints: window.dilations },
      pads: { ints: pads },
      group: { int: group },
    });
    ctx.markCroppable(value);
    return { value };
  }
  const kernel = weights && weights !== given ? ctx.float32(`${w}.scaled`, weights, wShape) : w;
  const { after, outputPadding } = transposedEnds(window, xShape, yShape);
  return {
    value: ctx.op('ConvTranspose', [g, kernel], name, xShape, {
      kernel_shape: { ints: window.kernel },
      strides: { ints: window.strides },
      dilations: { ints: window.dilations },
      pads: { ints: [...window.before, ...after] },
      group: { int: group },
      ...(outputPadding.some((p) => p > 0) ? { output_padding: { ints: outputPadding } } : {}),
    }),
  };
}

/**
 * ∂loss/∂W of a convolution with one group, on the CPU: one matrix product
 * per kernel tap. Tap (i, j) of every window is a strided Slice of the padded
 * input held channels first, [C, N, OH, OW] = [C, N·OH·OW]; dy as [M, N·OH·OW]
 * times its transpose is that tap's [M, C], and the taps side by side are
 * [M, C, kh, kw]. The batch lies inside each product, so nothing is summed
 * after. Three nodes a tap (Slice, Reshape, Gemm with transB): a session's
 * build time grows with its nodes (DenseNet201's training graph: 14.7k
 * nodes against 11.7k with the swapped convolution, 16.3k with a Transpose
 * and an Unsqueeze per tap). ONNX Runtime's matrix products run near their peak on these shapes,
 * where the swapped convolution (convWeightGradient) hands MLAS a product of
 * kh·kw columns: measured at batch 8 on 2 threads, 3×3 64→64 at 56² 2.4–3.7×
 * faster, 128→128 at 28² 1.8–2.3×, 256→256 at 14² 1.7×, 512→512 at 7² 1.5–2.3×.
 */
function convWeightGradientByTaps(ctx: BackwardContext, node: GraphNode, g: string, window: Window, name: string): string {
  const x = node.inputs[0];
  const label = node.name ?? node.outputs[0];
  const [n, channels, height, width] = ctx.shape(x);
  const [, outChannels, outHeight, outWidth] = ctx.shape(g);
  const [taps, columns] = [window.kernel[0] * window.kernel[1], n * outHeight * outWidth];
  const padded = [height + window.before[0] + window.after[0], width + window.before[1] + window.after[1]];
  const source = [...window.before, ...window.after].some((p) => p > 0)
    ? ctx.op('Pad', [x, ctx.int64(`${name}.pads`, [0, 0, window.before[0], window.before[1], 0, 0, window.after[0], window.after[1]])], `${x}.padded.${label}`, [n, channels, ...padded])
    : x;
  const channelsFirst = ctx.op('Transpose', [source], `${source}.channelsFirst.${label}`, [channels, n, ...padded], { perm: { ints: [1, 0, 2, 3] } });
  const dyByChannel = ctx.op('Transpose', [g], `${g}.channelsFirst`, [outChannels, n, outHeight, outWidth], { perm: { ints: [1, 0, 2, 3] } });
  const dyRows = ctx.reshape(dyByChannel, [outChannels, columns], `${g}.rows.${label}`);
  const axes = ctx.int64(`${name}.tapAxes`, [2, 3]);
  const steps = ctx.int64(`${name}.tapSteps`, window.strides);
  const products: string[] = [];
  for (let i = 0; i < window.kernel[0]; i++) {
    for (let j = 0; j < window.kernel[1]; j++) {
      const tap = `${name}.tap${i}x${j}`;
      const starts = [i * window.dilations[0], j * window.dilations[1]];
      const ends = [starts[0] + (outHeight - 1) * window.strides[0] + 1, starts[1] + (outWidth - 1) * window.strides[1] + 1];
      const values = ctx.op('Slice', [channelsFirst, ctx.int64(`${tap}.starts`, starts), ctx.int64(`${tap}.ends`, ends), axes, steps], `${tap}.values`, [channels, n, outHeight, outWidth]);
      // dy [M, K] times the tap's values [C, K] transposed, in one Gemm (a session's build time grows with its nodes).
      products.push(ctx.op('Gemm', [dyRows, ctx.reshape(values, [channels, columns], `${tap}.rows`)], `${tap}.product`, [outChannels, channels], { transB: { int: 1 } }));
    }
  }
  // The taps side by side, [M, taps·C], then [M, C, taps].
  const byTap = taps === 1 ? products[0] : ctx.op('Concat', products, `${name}.taps`, [outChannels, taps * channels], { axis: { int: 1 } });
  const stacked = taps === 1 ? byTap : ctx.op('Transpose', [ctx.reshape(byTap, [outChannels, taps, channels], `${name}.tapsByChannel`)], `${name}.channelsByTap`, [outChannels, channels, taps], { perm: { ints: [0, 2, 1] } });
  return ctx.reshape(stacked, ctx.shape(node.inputs[1]), name);
}

/**
 * ∂loss/∂W of a 2-D convolution. A 1×1 kernel without pads: per image
 * dy [M, HW] times xᵀ [HW, C] (x subsampled first where strided), summed
 * over the batch. On the CPU, other kernels with one group take a matrix
 * product per tap (convWeightGradientByTaps), and depthwise ones one group
 * per image and channel with no transposes (see there). Otherwise (other
 * groupings, and on GPUs) a convolution of the input with dy as its
 * kernel: batch and channel axes swapped (input [C/g, g·N, H, W], kernel
 * [M, N, OH, OW], g groups), strides and dilations exchanged, which gives
 * [C/g, M, kh, kw] to transpose back; where the forward's windows left the
 * last rows or columns unread, the input is cropped to what they read.
 */
function convWeightGradient(ctx: BackwardContext, node: GraphNode, g: string, window: Window, group: number): string {
  const [x, w] = node.inputs;
  const [n, channels, height, width] = ctx.shape(x);
  const [, outChannels, outHeight, outWidth] = ctx.shape(g);
  const wShape = ctx.shape(w);
  const perGroupIn = channels / group;
  const name = `${w}.grad.${node.name ?? node.outputs[0]}`;
  if (ctx.shape(x).length !== 4) throw new Error(`Conv ${node.name ?? node.outputs[0]}: weight gradients are built for 2-D convolutions only`);
  const unpadded = [...window.before, ...window.after].every((p) => p === 0);
  if (group === 1 && window.kernel.every((k) => k === 1) && unpadded) {
    let xs = x;
    if (window.strides.some((s) => s !== 1)) {
      xs = ctx.op('Slice', [
        x,
        ctx.int64(`${name}.sub.starts`, [0, 0]),
        ctx.int64(`${name}.sub.ends`, [(outHeight - 1) * window.strides[0] + 1, (outWidth - 1) * window.strides[1] + 1]),
        ctx.int64(`${name}.sub.axes`, [2, 3]),
        ctx.int64(`${name}.sub.steps`, window.strides),
      ], `${x}.subsampled.${node.name ?? node.outputs[0]}`, [n, channels, outHeight, outWidth]);
    }
    const pixels = outHeight * outWidth;
    const xT = ctx.memo(`pixelsByChannel:${xs}`, () => ctx.op('Transpose', [ctx.reshape(xs, [n, channels, pixels], `${xs}.rows`)], `${xs}.pixelsByChannel`, [n, pixels, channels], { perm: { ints: [0, 2, 1] } }));
    const perImage = ctx.op('MatMul', [ctx.reshape(g, [n, outChannels, pixels], `${g}.rows`), xT], `${name}.perImage`, [n, outChannels, channels]);
    const summed = ctx.op('ReduceSum', [perImage, ctx.int64(`${name}.batch`, [0])], `${name}.summed`, [outChannels, channels], { keepdims: { int: 0 } });
    return ctx.reshape(summed, wShape, name);
  }
  if (ctx.device === 'cpu' && group === 1) return convWeightGradientByTaps(ctx, node, g, window, name);
  // What the windows read of each spatial axis: the padded input up to the last window's end.
  const read = window.kernel.map((k, i) => (([outHeight, outWidth][i] - 1) * window.strides[i] + (k - 1) * window.dilations[i] + 1) - window.before[i]);
  const sizes = [height, width];
  let source = x;
  if (read.some((r, i) => r < sizes[i])) {
    const ends = read.map((r, i) => Math.min(r, sizes[i]));
    source = ctx.op('Slice', [x, ctx.int64(`${name}.read.starts`, [0, 0]), ctx.int64(`${name}.read.ends`, ends), ctx.int64(`${name}.read.axes`, [2, 3])], `${x}.read.${node.name ?? node.outputs[0]}`, [n, channels, ...ends]);
  }
  const [, , sh, sw] = ctx.shape(source);
  const after = read.map((r, i) => Math.max(0, r - [sh, sw][i]));
  const exchanged = {
    strides: { ints: window.dilations },
    dilations: { ints: window.strides },
    pads: { ints: [...window.before, ...after] },
  };
  if (ctx.device === 'cpu' && perGroupIn === 1 && outChannels === group) {
    // Depthwise on the CPU: one group per image and channel, x [1, N·C, H, W] with dy [N·C, 1, OH, OW] as the kernel,
    // summed over the images after — a depthwise convolution, which OnnxSession runs on the NCHWc kernels
    // (nchwc-graph.ts), and whose input is the forward's own input reordered once.
    const input = ctx.reshape(source, [1, n * channels, sh, sw], `${source}.imagesAsChannels`);
    const kernel = ctx.reshape(g, [n * outChannels, 1, outHeight, outWidth], `${g}.asDepthwiseKernel`);
    const perImage = ctx.op('Conv', [input, kernel], `${name}.perImage`, [1, n * channels, ...window.kernel], {
      kernel_shape: { ints: [outHeight, outWidth] },
      ...exchanged,
      group: { int: n * channels },
    });
    if (n === 1) return ctx.reshape(perImage, wShape, name);
    const images = ctx.reshape(perImage, [n, channels, ...window.kernel], `${name}.images`);
    const summed = ctx.op('ReduceSum', [images, ctx.int64(`${name}.batch`, [0])], `${name}.summed`, [channels, ...window.kernel], { keepdims: { int: 0 } });
    return ctx.reshape(summed, wShape, name);
  }
  const grouped = ctx.reshape(source, [n, group, perGroupIn, sh, sw], `${source}.groups`);
  const swapped = ctx.op('Transpose', [grouped], `${source}.channelsFirst`, [perGroupIn, group, n, sh, sw], { perm: { ints: [2, 1, 0, 3, 4] } });
  const input = ctx.reshape(swapped, [perGroupIn, group * n, sh, sw], `${source}.asBatch`);
  const kernel = ctx.op('Transpose', [g], `${g}.asKernel`, [outChannels, n, outHeight, outWidth], { perm: { ints: [1, 0, 2, 3] } });
  const correlated = ctx.op('Conv', [input, kernel], `${name}.swapped`, [perGroupIn, outChannels, ...window.kernel], {
    kernel_shape: { ints: [outHeight, outWidth] },
    ...exchanged,
    group: { int: group },
  });
  if (perGroupIn === 1) return ctx.reshape(correlated, wShape, name);
  return ctx.op('Transpose', [correlated], name, wShape, { perm: { ints: [1, 0, 2, 3] } });
}

export const convBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, w] = node.inputs;
  const xShape = ctx.shape(x);
  const wShape = ctx.shape(w);
  const group = intAttribute(node, 'group', 1);
  const window = windowOf(node, xShape, ctx.shape(node.outputs[0]), intsAttribute(node, 'kernel_shape') ?? wShape.slice(2));
  const result: (Gradient | undefined)[] = [undefined, undefined, undefined];
  if (wants[0]) result[0] = convInputGradient(ctx, node, dy, window, group);
  if (wants[1] || wants[2]) {
    const g = ctx.materialize(dy);
    if (wants[1]) result[1] = { value: convWeightGradient(ctx, node, g, window, group) };
    if (wants[2]) {
      const outChannels = wShape[0];
      result[2] = { value: ctx.op('ReduceSum', [g, ctx.int64(`${node.inputs[2]}.grad.axes`, [0, 2, 3])], `${node.inputs[2]}.grad.${node.name ?? node.outputs[0]}`, [outChannels], { keepdims: { int: 0 } }) };
    }
  }
  return result;
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

/**
 * x − μ as the forward computed it for the variance — σ² as
 * ReduceMean((x − μ)·(x − μ)), onnx/training-graph.ts's form — or undefined
 * where the variance was computed otherwise.
 */
function forwardCentred(ctx: BackwardContext, x: string, variance: string): string | undefined {
  const average = ctx.index.producer(variance);
  const squares = average?.op === 'ReduceMean' ? ctx.index.producer(average.inputs[0]) : undefined;
  const centred = squares?.op === 'Mul' && squares.inputs[0] === squares.inputs[1] ? ctx.index.producer(squares.inputs[0]) : undefined;
  return centred?.op === 'Sub' && centred.inputs[0] === x ? centred.outputs[0] : undefined;
}

/**
 * A batch norm that normalises with its own batch's statistics (training):
 * mean and variance are computed from x over every axis but the channels
 * (onnx/training-graph.ts writes them so), and the gradients are
 *   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ/√(σ²+ε) · (dy − dβ/m − x̂·dγ/m)
 * with x̂ = (x − μ)/√(σ²+ε) and m values per channel; nothing flows into
 * the statistics themselves, as dx already accounts for them. dx is
 * written as per-channel factors of dy and x − μ (the forward's own), so
 * that it takes three passes over the activations besides the two sums.
 */
function batchStatisticsBackward(ctx: BackwardContext, node: GraphNode, dy: Gradient, wants: readonly boolean[]): Array<Gradient | undefined> {
  const [x, gamma, , mean, variance] = node.inputs;
  const label = node.name ?? node.outputs[0];
  if (ctx.index.producer(mean)?.op !== 'ReduceMean' || ctx.index.producer(mean)?.inputs[0] !== x) {
    throw new Error(`BatchNormalization ${label}: its statistics are graph values but not its batch's (a ReduceMean of its input)`);
  }
  const shape = ctx.shape(x);
  const channels = shape[1];
  const axes = shape.map((_, i) => i).filter((i) => i !== 1);
  const count = axes.reduce((product, axis) => product * shape[axis], 1);
  const perChannel = [1, channels, ...shape.slice(2).map(() => 1)];
  const flat = [channels];
  const g = ctx.materialize(dy);
  const epsilon = floatAttribute(node, 'epsilon', 1e-5);
  const inverseStd = ctx.op('Reciprocal', [ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(epsilon)], `${variance}.plusEpsilon`, flat)], `${variance}.std`, flat)], `${variance}.inverseStd`, flat);
  const centred = forwardCentred(ctx, x, variance) ?? ctx.op('Sub', [x, ctx.reshape(mean, perChannel, `${mean}.perChannel`)], `${x}.centred.${label}`, shape);
  const reduce = (value: string, name: string) => ctx.op('ReduceSum', [value, ctx.int64(`${name}.axes`, axes)], name, flat, { keepdims: { int: 0 } });
  const sumDy = reduce(g, `${label}.sumDy`);
  // Σ dy·(x − μ); Σ dy·x̂ is that times 1/σ.
  const sumDyCentred = reduce(ctx.op('Mul', [g, centred], `${label}.dyCentred`, shape), `${label}.sumDyCentred`);
  const channelOp = (op: string, inputs: string[], name: string) => ctx.op(op, inputs, `${label}.${name}`, flat);
  const result: Array<Gradient | undefined> = [undefined, undefined, undefined, undefined, undefined];
  if (wants[0]) {
    // dx = a·dy + b·(x − μ) + k per channel, with a = γ/σ, b = −a·Σ dy·(x − μ)/(m·σ²), k = −a·Σ dy/m: a·dy + k
    // in one pass as a batch norm with mean 0 and variance 1 (no ε), then b·(x − μ) added.
    const a = channelOp('Mul', [gamma, inverseStd], 'dyScale');
    const b = channelOp('Neg', [channelOp('Mul', [channelOp('Mul', [a, channelOp('Mul', [inverseStd, inverseStd], 'inverseVariance')], 'scaledInverseVariance'), channelOp('Mul', [sumDyCentred, ctx.scalar(1 / count)], 'meanDyCentred')], 'centredScale.positive')], 'centredScale');
    const k = channelOp('Neg', [channelOp('Mul', [a, channelOp('Mul', [sumDy, ctx.scalar(1 / count)], 'meanDy')], 'shift.positive')], 'shift');
    const zero = ctx.memo(`zeros:${channels}`, () => ctx.float32(`bn.zeros.${channels}`, new Float32Array(channels), flat));
    const one = ctx.memo(`ones:${channels}`, () => ctx.float32(`bn.ones.${channels}`, new Float32Array(channels).fill(1), flat));
    const affine = ctx.op('BatchNormalization', [g, a, k, zero, one], `${label}.dyAffine`, shape, { epsilon: { float: 0 } });
    const correction = ctx.op('Mul', [centred, ctx.reshape(b, perChannel, `${label}.centredScale.perChannel`)], `${label}.centredTerm`, shape);
    result[0] = { value: ctx.op('Add', [affine, correction], `${x}.grad.${label}`, shape) };
  }
  if (wants[1]) result[1] = { value: ctx.op('Mul', [sumDyCentred, inverseStd], `${gamma}.grad.${label}`, flat) };
  if (wants[2]) result[2] = { value: sumDy };
  return result;
}

export const batchNormBackward: BackwardRule = (ctx, node, dy, wants) => {
  if (ctx.floats(node.inputs[3]) === undefined || ctx.floats(node.inputs[4]) === undefined) return batchStatisticsBackward(ctx, node, dy, wants);
  if (wants.some((wanted, i) => wanted && i > 0)) {
    throw new Error(`BatchNormalization ${node.name ?? node.outputs[0]}: with running statistics, only its input gets a gradient (its scale and offset train with batch statistics)`);
  }
  const x = node.inputs[0];
  const scale = batchNormScale(ctx, node);
  const combined = dy.channelScale ? scale.map((s, c) => s * (dy.channelScale as Float32Array)[c]) : scale;
  const pending: Gradient = { value: dy.value, channelScale: combined };
  return [foldsIntoConv(ctx, x) ? pending : { value: ctx.materialize(pending) }];
};

/**
 * What layer and instance norm's backward share, for x normalised over
 * `axes` (kept as 1s): x̂ = (x − μ)·s and s = 1/√(σ² + ε) recomputed once
 * per node with ReduceMean — σ² as the mean of (x − μ)², not through
 * ReduceSumSquare, which ONNX Runtime computes less accurately — and the
 * input gradient for g = dy·scale, dx = s·(g − mean(g) − x̂·mean(g·x̂)).
 */
function standardization(ctx: BackwardContext, node: GraphNode, axes: readonly number[], epsilon: number) {
  const x = node.inputs[0];
  const label = node.name ?? node.outputs[0];
  const shape = ctx.shape(x);
  const statShape = shape.map((size, i) => (axes.includes(i) ? 1 : size));
  const mean = (value: string, name: string) => ctx.op('ReduceMean', [value], `${label}.${name}`, statShape, { axes: { ints: axes }, keepdims: { int: 1 } });
  const full = (op: string, inputs: string[], name: string) => ctx.op(op, inputs, `${label}.${name}`, shape);
  const { inverseStd, xHat } = ctx.memo(`standardized:${label}`, () => {
    const centred = full('Sub', [x, mean(x, 'mean')], 'centred');
    const variance = mean(full('Mul', [centred, centred], 'centredSquared'), 'variance');
    const std = ctx.op('Sqrt', [ctx.op('Add', [variance, ctx.scalar(epsilon)], `${label}.variancePlusEpsilon`, statShape)], `${label}.std`, statShape);
    const inverse = ctx.op('Reciprocal', [std], `${label}.inverseStd`, statShape);
    return { inverseStd: inverse, xHat: full('Mul', [centred, inverse], 'xHat') };
  });
  const inputGradient = (scaled: string): string => {
    const centredG = full('Sub', [scaled, mean(scaled, 'dyScaledMean')], 'dyScaledCentred');
    const projection = full('Mul', [xHat, mean(full('Mul', [scaled, xHat], 'dyScaledXHat'), 'dyScaledXHatMean')], 'projection');
    return ctx.op('Mul', [full('Sub', [centredG, projection], 'dxUnscaled'), inverseStd], `${x}.grad.${label}`, shape);
  };
  return { xHat, full, inputGradient };
}

/**
 * LayerNormalization over the axes [axis, rank): with g = dy·Scale,
 *   dx = s·(g − mean(g) − x̂·mean(g·x̂)),  dScale = Σ dy·x̂,  dB = Σ dy
 * (the last two summed over the other axes; see standardization). Only the
 * Y output may carry a gradient.
 */
export const layerNormBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, scale, bias] = node.inputs;
  const label = node.name ?? node.outputs[0];
  const rank = ctx.shape(x).length;
  const first = (intAttribute(node, 'axis', -1) + rank) % rank;
  const axes = Array.from({ length: rank - first }, (_, i) => first + i);
  const { xHat, full, inputGradient } = standardization(ctx, node, axes, floatAttribute(node, 'epsilon', 1e-5));
  const g = ctx.materialize(dy);
  const result: Array<Gradient | undefined> = [undefined, undefined, undefined];
  if (wants[0]) result[0] = { value: inputGradient(full('Mul', [g, scale], 'dyScaled')) };
  if (wants[1]) result[1] = { value: reduceTo(ctx, full('Mul', [g, xHat], 'dyXHat'), ctx.shape(scale), `${scale}.grad.${label}`) };
  if (wants[2] && bias !== undefined && bias !== '') result[2] = { value: reduceTo(ctx, g, ctx.shape(bias), `${bias}.grad.${label}`) };
  return result;
};

/**
 * InstanceNormalization (PyTorch's GroupNorm exports to one, on the groups
 * as channels, with scale 1 and bias 0): layer norm's backward per (n, c)
 * over the spatial axes (σ² biased), with a per-channel scale, g = dy·scale[c]:
 *   dx = s·(g − mean(g) − x̂·mean(g·x̂)),  dscale = Σ dy·x̂,  dB = Σ dy
 * (the last two summed over the batch and the spatial axes; see
 * standardization); a constant scale of ones costs no multiplication.
 */
export const instanceNormBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, scale, bias] = node.inputs;
  const label = node.name ?? node.outputs[0];
  const shape = ctx.shape(x);
  const rank = shape.length;
  if (rank < 3) throw new Error(`InstanceNormalization ${label}: needs an input [N, C, ...spatial], not [${shape.join(', ')}]`);
  const axes = Array.from({ length: rank - 2 }, (_, i) => i + 2);
  const channelShape = [shape[1], ...axes.map(() => 1)];
  const { xHat, full, inputGradient } = standardization(ctx, node, axes, floatAttribute(node, 'epsilon', 1e-5));
  const g = ctx.materialize(dy);
  const perChannelSum = (value: string, name: string) => ctx.op('ReduceSum', [value, ctx.int64(`${name}.axes`, [0, ...axes])], name, [shape[1]], { keepdims: { int: 0 } });
  const result: Array<Gradient | undefined> = [undefined, undefined, undefined];
  if (wants[0]) {
    const ones = ctx.floats(scale)?.every((v) => v === 1) ?? false;
    result[0] = { value: inputGradient(ones ? g : full('Mul', [g, ctx.reshape(scale, channelShape, `${scale}.perChannel.${label}`)], 'dyScaled')) };
  }
  if (wants[1]) result[1] = { value: perChannelSum(full('Mul', [g, xHat], 'dyXHat'), `${scale}.grad.${label}`) };
  if (wants[2]) result[2] = { value: perChannelSum(g, `${bias}.grad.${label}`) };
  return result;
};

/**
 * ConvTranspose, input gradient only: the adjoint of a transposed
 * convolution is the convolution with the same weights W [C_in, C_out/g,
 * ...k] read as a Conv kernel (C_in outputs from C_out/g inputs per group),
 * the same strides, dilations, pads and group — whether W is a constant or a
 * graph value. Output_padding only adds output cells no input reaches, so
 * the Conv's floor drops them. The bias gets Σ dy; a weight gradient is not
 * built. Explicit pads only (auto_pad NOTSET or VALID, no output_shape).
 */
export const convTransposeBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, w, bias] = node.inputs;
  const label = node.name ?? node.outputs[0];
  if (wants[1]) throw new Error(`ConvTranspose ${label}: its weights get no gradient (only its input and bias do)`);
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const wShape = ctx.shape(w);
  const rank = xShape.length - 2;
  const autoPad = stringAttribute(node, 'auto_pad', 'NOTSET');
  if ((autoPad !== 'NOTSET' && autoPad !== 'VALID') || intsAttribute(node, 'output_shape')) {
    throw undifferentiable('ConvTranspose', label, `with auto_pad ${autoPad}${intsAttribute(node, 'output_shape') ? ' and an output_shape' : ''} (only explicit pads)`);
  }
  const kernel = intsAttribute(node, 'kernel_shape') ?? wShape.slice(2);
  const ones = new Array<number>(rank).fill(1);
  const strides = intsAttribute(node, 'strides') ?? ones;
  const dilations = intsAttribute(node, 'dilations') ?? ones;
  const pads = autoPad === 'VALID' ? new Array<number>(2 * rank).fill(0) : intsAttribute(node, 'pads') ?? new Array<number>(2 * rank).fill(0);
  const group = intAttribute(node, 'group', 1);
  const reached = kernel.map((k, i) => Math.floor((yShape[i + 2] + pads[i] + pads[i + rank] - ((k - 1) * dilations[i] + 1)) / strides[i]) + 1);
  if (reached.some((size, i) => size !== xShape[i + 2])) {
    throw new Error(`ConvTranspose ${label}: its output [${yShape.join(', ')}] is not what its input [${xShape.join(', ')}] reaches with these strides and pads (output_padding at least the stride?)`);
  }
  const g = ctx.materialize(dy);
  const result: Array<Gradient | undefined> = [undefined, undefined, undefined];
  if (wants[0]) {
    result[0] = {
      value: ctx.op('Conv', [g, w], `${x}.grad.${label}`, xShape, {
        kernel_shape: { ints: kernel },
        strides: { ints: strides },
        dilations: { ints: dilations },
        pads: { ints: pads },
        group: { int: group },
      }),
    };
  }
  if (wants[2]) result[2] = { value: ctx.op('ReduceSum', [g, ctx.int64(`${bias}.grad.axes`, [0, ...kernel.map((_, i) => i + 2)])], `${bias}.grad.${label}`, [yShape[1]], { keepdims: { int: 0 } }) };
  return result;
};
