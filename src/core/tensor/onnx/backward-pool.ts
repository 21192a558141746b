/**
 * Backward rules of pooling — MaxPool, AveragePool, GlobalAveragePool,
 * GlobalMaxPool — and of the reductions ReduceMean and ReduceSum, whose
 * gradient is dy (divided by the count for a mean) broadcast back over the
 * reduced axes, and ReduceMax and ReduceMin, whose gradient goes to the
 * first extreme (see extremumBackward).
 *
 * Max pooling routes each window's gradient to the first maximum in
 * row-major window order, as PyTorch and tfjs's cpu kernels do, summing
 * where overlapping windows share a maximum: by the forward node's Indices
 * output and ScatterElements, or where the device computes no Indices
 * (WebGPU) by comparison with the pooled maxima (max-pool-routing.ts).
 *
 * Average pooling is linear: dx = Σ over the windows holding x of dy/D, D
 * each window's divisor. D depends on pads, count_include_pad and ceil mode
 * in ways the runtimes have not always agreed on, so it is not written down
 * here: ONNX Runtime's own AveragePool of an all-ones input gives count/D per
 * window (count: the window's in-bounds cells, unambiguous), which the
 * builder divides by count — a constant subgraph the runtime folds away when
 * the session starts. The sum over windows is a depthwise Conv with a ones
 * kernel at unit strides (as fast as the forward pool), else a one-channel
 * ConvTranspose over the channels as batch.
 */
import type { BackwardContext, BackwardRule, Gradient } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { elementCount, float32Tensor, int64Tensor } from './graph.ts';
import { intAttribute, intsAttribute, transposedEnds, windowOf, type Window } from './node-attributes.ts';
import { inversePermutation } from '../permutation.ts';

function poolWindow(node: GraphNode, xShape: readonly number[], yShape: readonly number[]): Window {
  const kernel = intsAttribute(node, 'kernel_shape');
  if (!kernel) throw new Error(`${node.op} ${node.name ?? node.outputs[0]} has no kernel_shape`);
  return windowOf(node, xShape, yShape, kernel);
}

export const maxPoolBackward: BackwardRule = (ctx, node, dy) => {
  if (intAttribute(node, 'storage_order', 0) !== 0) throw new Error(`MaxPool ${node.name ?? node.outputs[0]}: column-major storage_order is not supported`);
  const x = node.inputs[0];
  return [{ value: ctx.routeToMaxima(node, ctx.materialize(dy), `${x}.grad.${node.name ?? node.outputs[0]}`) }];
};

/** Cells of each window that lie inside the input (not in pads, not past a ceil-mode edge), per output position. */
function inBoundsCounts(window: Window, xShape: readonly number[], yShape: readonly number[]): Float32Array {
  const axes = window.kernel.map((k, i) => {
    const size = xShape[i + 2];
    return Array.from({ length: yShape[i + 2] }, (_, o) => {
      const start = o * window.strides[i] - window.before[i];
      return Math.max(0, Math.min(start + k, size) - Math.max(start, 0));
    });
  });
  const counts = new Float32Array(axes.reduce((n, axis) => n * axis.length, 1));
  counts.forEach((_, flat) => {
    let rest = flat;
    let count = 1;
    for (let i = axes.length - 1; i >= 0; i--) {
      count *= axes[i][rest % axes[i].length];
      rest = Math.floor(rest / axes[i].length);
    }
    // An empty window's output is 0 whatever the divisor: any non-zero count keeps 0/count finite.
    counts[flat] = count === 0 ? 1 : count;
  });
  return counts;
}

/** Whether every window lies wholly inside the input, so every divisor is the kernel's size. */
function allWindowsFull(window: Window, xShape: readonly number[], yShape: readonly number[]): boolean {
  return window.kernel.every((k, i) => window.before[i] === 0 && (yShape[i + 2] - 1) * window.strides[i] + k <= xShape[i + 2]);
}

/** 1/D per output position, [1, 1, ...out], as ONNX Runtime divides. */
function reciprocalDivisors(ctx: BackwardContext, node: GraphNode, window: Window, xShape: readonly number[], yShape: readonly number[]): string {
  const spatialIn = xShape.slice(2);
  const spatialOut = yShape.slice(2);
  const name = `${node.outputs[0]}.divisor`;
  const ones = ctx.builder.constant(`${name}.ones`, float32Tensor(new Float32Array(elementCount(spatialIn)).fill(1), [1, 1, ...spatialIn]));
  const pooled = ctx.op('AveragePool', [ones], `${name}.pooled`, [1, 1, ...spatialOut], node.attributes ? { ...node.attributes } : undefined);
  const counts = ctx.float32(`${name}.counts`, inBoundsCounts(window, xShape, yShape), [1, 1, ...spatialOut]);
  return ctx.op('Div', [pooled, counts], `${name}.reciprocal`, [1, 1, ...spatialOut]);
}

/** Σ over the windows holding each input cell of the per-window values g, each times `weight`. */
function windowSums(ctx: BackwardContext, g: string, weight: number, window: Window, xShape: readonly number[], yShape: readonly number[], name: string): string {
  const [n, c] = xShape;
  const { after, outputPadding } = transposedEnds(window, xShape, yShape);
  const kernelSize = elementCount(window.kernel);
  if (window.strides.every((s) => s === 1)) {
    const before = window.kernel.map((k, i) => k - 1 - window.before[i]);
    const end = window.kernel.map((k, i) => k - 1 - after[i]);
    if ([...before, ...end].every((p) => p >= 0)) {
      // A ones kernel is its own flip: the transposed window sum is a plain depthwise convolution.
      const ones = ctx.float32(`${name}.ones`, new Float32Array(c * kernelSize).fill(weight), [c, 1, ...window.kernel]);
      return ctx.op('Conv', [g, ones], name, xShape, { kernel_shape: { ints: window.kernel }, pads: { ints: [...before, ...end] }, group: { int: c } });
    }
  }
  const yShapeFlat = [n * c, 1, ...yShape.slice(2)];
  const xShapeFlat = [n * c, 1, ...xShape.slice(2)];
  const ones = ctx.float32(`${name}.ones`, new Float32Array(kernelSize).fill(weight), [1, 1, ...window.kernel]);
  const summed = ctx.op('ConvTranspose', [ctx.reshape(g, yShapeFlat, `${name}.channels`), ones], `${name}.summed`, xShapeFlat, {
    kernel_shape: { ints: window.kernel },
    strides: { ints: window.strides },
    pads: { ints: [...window.before, ...after] },
    ...(outputPadding.some((p) => p > 0) ? { output_padding: { ints: outputPadding } } : {}),
  });
  return ctx.reshape(summed, xShape, name);
}

export const averagePoolBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const window = poolWindow(node, xShape, yShape);
  if (window.dilations.some((d) => d !== 1)) throw new Error(`AveragePool ${node.name ?? node.outputs[0]}: dilations are not supported`);
  const g = ctx.materialize(dy);
  const name = `${x}.grad.${node.name ?? node.outputs[0]}`;
  // Equal divisors go into the kernel; others scale dy first.
  if (allWindowsFull(window, xShape, yShape)) return [{ value: windowSums(ctx, g, 1 / elementCount(window.kernel), window, xShape, yShape, name) }];
  const weighted = ctx.op('Mul', [g, reciprocalDivisors(ctx, node, window, xShape, yShape)], `${g}.perWindow`, yShape);
  return [{ value: windowSums(ctx, weighted, 1, window, xShape, yShape, name) }];
};

export const globalAveragePoolBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const xShape = ctx.shape(x);
  const g = ctx.materialize(dy);
  const mean = ctx.op('Mul', [g, ctx.scalar(1 / elementCount(xShape.slice(2)))], `${g}.mean`, ctx.shape(g));
  return [{ value: ctx.op('Expand', [mean, ctx.int64(`${x}.shape`, xShape)], `${x}.grad.${node.name ?? node.outputs[0]}`, xShape) }];
};

/**
 * A ReduceMean's or ReduceSum's axes, non-negative: from its axes attribute
 * (ReduceMean up to opset 17) or its constant axes input; none given means
 * every axis, or none at all (the identity) with noop_with_empty_axes.
 */
function reducedAxes(ctx: BackwardContext, node: GraphNode, rank: number): number[] {
  let axes = intsAttribute(node, 'axes');
  const input = node.inputs[1];
  if (axes === undefined && input !== undefined && input !== '') {
    axes = ctx.ints(input);
    if (!axes) throw new Error(`${node.op} ${node.name ?? node.outputs[0]}: its axes input must be a constant`);
  }
  if (!axes || axes.length === 0) return intAttribute(node, 'noop_with_empty_axes', 0) ? [] : Array.from({ length: rank }, (_, i) => i);
  return axes.map((axis) => (axis + rank) % rank);
}

function reductionBackward(mean: boolean): BackwardRule {
  return (ctx, node, dy) => {
    const x = node.inputs[0];
    const xShape = ctx.shape(x);
    const axes = reducedAxes(ctx, node, xShape.length);
    const name = `${x}.grad.${node.name ?? node.outputs[0]}`;
    const kept = xShape.map((size, i) => (axes.includes(i) ? 1 : size));
    let g = ctx.reshape(ctx.materialize(dy), kept, `${name}.kept`);
    const count = elementCount(axes.map((axis) => xShape[axis]));
    if (mean && count !== 1) g = ctx.op('Mul', [g, ctx.scalar(1 / count)], `${name}.mean`, kept);
    if (kept.every((size, i) => size === xShape[i])) return [{ value: g }];
    return [{ value: ctx.op('Expand', [g, ctx.int64(`${name}.shape`, xShape)], name, xShape) }];
  };
}

export const reduceMeanBackward: BackwardRule = reductionBackward(true);
export const reduceSumBackward: BackwardRule = reductionBackward(false);

/**
 * ReduceMax and ReduceMin (and GlobalMaxPool, the max over the spatial
 * axes): dy goes to the first extreme in row-major order over the reduced
 * axes — MaxPool's convention, and what PyTorch's max(dim)/min(dim) pick on
 * the CPU (their indices), which CBAM-style attention exports to
 * ReduceMax(keepdims 1). (torch.amax/amin would split dy evenly among ties.)
 * The reduced axes are made one (merged where adjacent, else transposed to
 * the end first), ArgMax/ArgMin finds the first extreme along it, and a
 * comparison of each position with that index masks dy broadcast back.
 */
function extremumBackward(ctx: BackwardContext, node: GraphNode, dy: Gradient, axes: readonly number[], max: boolean): Gradient {
  const x = node.inputs[0];
  const xShape = ctx.shape(x);
  const name = `${x}.grad.${node.name ?? node.outputs[0]}`;
  const kept = xShape.map((size, i) => (axes.includes(i) ? 1 : size));
  const g = ctx.reshape(ctx.materialize(dy), kept, `${name}.kept`);
  if (axes.length === 0 || axes.every((axis) => xShape[axis] === 1)) return { value: g };
  const sorted = [...axes].sort((a, b) => a - b);
  const adjacent = sorted.every((axis, i) => i === 0 || axis === sorted[i - 1] + 1);
  // x arranged so that the reduced axes are adjacent, in their order, from `first` on.
  const order = adjacent ? xShape.map((_, i) => i) : [...xShape.map((_, i) => i).filter((i) => !sorted.includes(i)), ...sorted];
  const first = adjacent ? sorted[0] : xShape.length - sorted.length;
  const arranged = order.map((axis) => xShape[axis]);
  const source = adjacent ? x : ctx.op('Transpose', [x], `${name}.reducedLast`, arranged, { perm: { ints: order } });
  const count = elementCount(sorted.map((axis) => xShape[axis]));
  const merged = [...arranged.slice(0, first), count, ...arranged.slice(first + sorted.length)];
  const flat = ctx.reshape(source, merged, `${name}.merged`);
  const indexShape = merged.map((size, i) => (i === first ? 1 : size));
  const index = ctx.op(max ? 'ArgMax' : 'ArgMin', [flat], `${name}.index`, indexShape, { axis: { int: first }, keepdims: { int: 1 } }, 'int64');
  const positions = ctx.builder.constant(`${name}.positions`, int64Tensor(Array.from({ length: count }, (_, i) => i), merged.map((size, i) => (i === first ? size : 1))));
  const hit = ctx.op('Equal', [positions, index], `${name}.hit`, merged, undefined, 'bool');
  const mask = ctx.op('Cast', [hit], `${name}.mask`, merged, { to: { int: 1 } });
  const unmerged = ctx.reshape(mask, arranged, `${name}.maskArranged`);
  let routed: string;
  if (adjacent) {
    routed = ctx.op('Mul', [ctx.reshape(unmerged, xShape, `${name}.maskShaped`), g], name, xShape);
  } else {
    const back = ctx.op('Transpose', [unmerged], `${name}.maskShaped`, xShape, { perm: { ints: inversePermutation(order) } });
    routed = ctx.op('Mul', [back, g], name, xShape);
  }
  return { value: routed };
}

function extremumReductionBackward(max: boolean): BackwardRule {
  return (ctx, node, dy) => [extremumBackward(ctx, node, dy, reducedAxes(ctx, node, ctx.shape(node.inputs[0]).length), max)];
}

export const reduceMaxBackward: BackwardRule = extremumReductionBackward(true);
export const reduceMinBackward: BackwardRule = extremumReductionBackward(false);

export const globalMaxPoolBackward: BackwardRule = (ctx, node, dy) => {
  const rank = ctx.shape(node.inputs[0]).length;
  return [extremumBackward(ctx, node, dy, Array.from({ length: rank - 2 }, (_, i) => i + 2), true)];
};
