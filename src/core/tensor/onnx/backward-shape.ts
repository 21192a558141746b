/**
 * Backward rules of ops that move values without arithmetic (Transpose,
 * Reshape and kin, Identity, Concat, Pad, Slice, Split, Gather, DepthToSpace,
 * SpaceToDepth), of the copying ops Expand, Tile and nearest Resize by whole
 * factors, and of the matrix products MatMul and Gemm (weights constant:
 * only the data operand gets a gradient).
 */
import { readingEveryOutput, undifferentiable, type BackwardContext, type BackwardRule, type Gradient } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { int64Tensor } from './graph.ts';
import { gradientName, reduceTo } from './backward-elementwise.ts';
import { floatAttribute, intAttribute, intsAttribute, stringAttribute } from './node-attributes.ts';
import { inversePermutation } from '../permutation.ts';

export const transposeBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const rank = ctx.shape(x).length;
  const perm = intsAttribute(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  return [{ value: ctx.op('Transpose', [ctx.materialize(dy)], gradientName(node), ctx.shape(x), { perm: { ints: inversePermutation(perm) } }) }];
};

/** Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
export const reshapeBackward: BackwardRule = (ctx, node, dy) => [{ value: ctx.reshape(ctx.materialize(dy), ctx.shape(node.inputs[0]), gradientName(node)) }];

/** Identity (and inference Dropout): the gradient passes as it is, DeepLift's plain view with it. */
export const identityBackward: BackwardRule = (_ctx, _node, dy) => [dy];

export const concatBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  const shape = ctx.shape(g);
  const axis = (intAttribute(node, 'axis', 0) + shape.length) % shape.length;
  const sizes = node.inputs.map((x) => ctx.shape(x)[axis]);
  if (wants.every(Boolean)) {
    const parts = ctx.builder.node('Split', [g, ctx.int64(`${g}.split`, sizes)], node.inputs.map((x, i) => ({ name: gradientName(node, i), shape: ctx.shape(x) })), { axis: { int: axis } });
    return parts.map((value) => ({ value }));
  }
  let start = 0;
  return node.inputs.map((x, i) => {
    const from = start;
    start += sizes[i];
    if (!wants[i]) return undefined;
    const slice = [ctx.int64(`${g}.start`, [from]), ctx.int64(`${g}.end`, [from + sizes[i]]), ctx.int64(`${g}.axis`, [axis])];
    return { value: ctx.op('Slice', [g, ...slice], gradientName(node, i), ctx.shape(x)) };
  });
};

/** Constant-mode Pad: the gradient is dy without the padding (and with zeros where a negative pad cropped). */
export const padBackward: BackwardRule = (ctx, node, dy) => {
  const [x, padsValue] = node.inputs;
  if (stringAttribute(node, 'mode', 'constant') !== 'constant') throw new Error(`Pad ${node.name ?? node.outputs[0]}: only constant padding is supported`);
  if (node.inputs.length > 3 && node.inputs[3] !== '') throw new Error(`Pad ${node.name ?? node.outputs[0]}: the axes input is not supported`);
  const pads = ctx.ints(padsValue);
  if (!pads) throw new Error(`Pad ${node.name ?? node.outputs[0]}: pads must be a constant`);
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const rank = xShape.length;
  const positive = pads.every((p) => p >= 0);
  if (positive && !dy.channelScale && pads[0] === 0 && pads[1] === 0 && pads[rank] === 0 && pads[rank + 1] === 0 && !ctx.requested.has(node.outputs[0])) {
    // The padded input of a convolution: its backward convolution pads less instead.
    const folded = ctx.cropConvOutput(dy.value, pads.slice(2, rank), pads.slice(rank + 2));
    if (folded) return [{ value: folded }];
  }
  const g = ctx.materialize(dy);
  const starts = xShape.map((_, i) => Math.max(pads[i], 0));
  const ends = xShape.map((_, i) => yShape[i] - Math.max(pads[rank + i], 0));
  const cropped = starts.some((s, i) => s > 0 || ends[i] < yShape[i]);
  const slicedShape = starts.map((s, i) => ends[i] - s);
  const sliced = cropped
    ? ctx.op('Slice', [g, ctx.int64(`${g}.starts`, starts), ctx.int64(`${g}.ends`, ends)], `${gradientName(node)}.sliced`, slicedShape)
    : g;
  const negative = pads.map((p) => Math.max(-p, 0));
  if (negative.every((p) => p === 0)) return [{ value: ctx.reshape(sliced, xShape, gradientName(node)) }];
  return [{ value: ctx.op('Pad', [sliced, ctx.int64(`${g}.unpad`, negative)], gradientName(node), xShape, { mode: { string: 'constant' } }) }];
};

/** An int64 input's constant values, the attribute of the same name where the node predates that input (`i` beyond its inputs), or undefined where absent. */
function constantInts(ctx: BackwardContext, node: GraphNode, i: number, attribute: string): readonly number[] | undefined {
  const value = node.inputs[i];
  if (value === undefined || value === '') return node.inputs.length <= i ? intsAttribute(node, attribute) : undefined;
  const values = ctx.ints(value);
  if (!values) throw new Error(`${node.op} ${node.name ?? node.outputs[0]}: its ${attribute} input must be a constant`);
  return values;
}

/** `g` with `axis` spread out by `step`: each value followed by step − 1 zeros (a unit axis after it padded, then merged). */
function spread(ctx: BackwardContext, g: string, axis: number, step: number, name: string): string {
  const shape = ctx.shape(g);
  const unit = [...shape.slice(0, axis + 1), 1, ...shape.slice(axis + 1)];
  const pads = new Array<number>(2 * unit.length).fill(0);
  pads[unit.length + axis + 1] = step - 1;
  const padded = ctx.op('Pad', [ctx.reshape(g, unit, `${name}.unit`), ctx.int64(`${name}.spreadPads`, pads)], `${name}.spreadPadded`, unit.map((size, i) => (i === axis + 1 ? step : size)), { mode: { string: 'constant' } });
  return ctx.reshape(padded, shape.map((size, i) => (i === axis ? size * step : size)), `${name}.spread`);
}

/**
 * Slice with constant starts, ends, axes and steps: dy put back where the
 * slice read, zeros elsewhere — reversed first along axes with a negative
 * step, spread with zeros between its values where |step| > 1, and then
 * padded (or cropped of a spread's trailing zeros) to the input's extent.
 * Starts are resolved as ONNX does (negative from the end, clamped); the
 * count read per axis is the output's static size.
 */
export const sliceBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const label = node.name ?? node.outputs[0];
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const rank = xShape.length;
  const name = gradientName(node);
  const starts = constantInts(ctx, node, 1, 'starts');
  if (!starts) throw new Error(`Slice ${label} has no starts`);
  const axes = constantInts(ctx, node, 3, 'axes') ?? starts.map((_, i) => i);
  const steps = constantInts(ctx, node, 4, 'steps') ?? starts.map(() => 1);
  if (yShape.some((size) => size === 0)) return [{ value: ctx.zeros(xShape, name) }];
  let g = ctx.materialize(dy);
  const pads = new Array<number>(2 * rank).fill(0);
  axes.forEach((rawAxis, i) => {
    const axis = (rawAxis + rank) % rank;
    const [dim, count, step] = [xShape[axis], yShape[axis], steps[i]];
    if (step === 0) throw new Error(`Slice ${label}: a step of 0`);
    const start = starts[i] < 0 ? starts[i] + dim : starts[i];
    const clamped = step > 0 ? Math.min(Math.max(start, 0), dim) : Math.min(Math.max(start, 0), dim - 1);
    // The lowest position read, and the gradient in ascending order of position.
    const first = step > 0 ? clamped : clamped + (count - 1) * step;
    if (step < 0 && count > 1) {
      const reversed = ctx.shape(g);
      g = ctx.op('Slice', [g, ctx.int64(`${name}.reverseStart`, [-1]), ctx.int64(`${name}.reverseEnd`, [-count - 1]), ctx.int64(`${name}.reverseAxis`, [axis]), ctx.int64(`${name}.reverseStep`, [-1])], `${name}.reversed${axis}`, reversed);
    }
    const k = Math.abs(step);
    if (k > 1) g = spread(ctx, g, axis, k, `${name}.axis${axis}`);
    pads[axis] = first;
    pads[rank + axis] = dim - first - count * k;
  });
  if (pads.every((p) => p === 0)) return [{ value: ctx.reshape(g, xShape, name) }];
  return [{ value: ctx.op('Pad', [g, ctx.int64(`${name}.pads`, pads)], name, xShape, { mode: { string: 'constant' } }) }];
};

/**
 * Split: the outputs' gradients concatenated back along the axis, zeros for
 * outputs no gradient reached; where only one did, it is padded instead.
 */
export const splitBackward: BackwardRule = readingEveryOutput((ctx, node, _dy, _wants, outputs) => {
  const x = node.inputs[0];
  const xShape = ctx.shape(x);
  const axis = (intAttribute(node, 'axis', 0) + xShape.length) % xShape.length;
  const name = gradientName(node);
  const sizes = node.outputs.map((y) => ctx.shape(y)[axis]);
  const reached = node.outputs.flatMap((_, i) => (outputs[i] ? [i] : []));
  if (reached.length === 1) {
    const [only] = reached;
    const before = sizes.slice(0, only).reduce((a, b) => a + b, 0);
    const pads = new Array<number>(2 * xShape.length).fill(0);
    pads[axis] = before;
    pads[xShape.length + axis] = xShape[axis] - before - sizes[only];
    return [{ value: ctx.op('Pad', [ctx.materialize(outputs[only] as Gradient), ctx.int64(`${name}.pads`, pads)], name, xShape, { mode: { string: 'constant' } }) }];
  }
  const parts = node.outputs.map((y, i) => {
    const gradient = outputs[i];
    return gradient ? ctx.materialize(gradient) : ctx.zeros(ctx.shape(y), `${y}.grad.zeros`);
  });
  return [{ value: ctx.op('Concat', parts, name, xShape, { axis: { int: axis } }) }];
});

/**
 * Gather with constant indices: dy sent to the positions it was read from,
 * summed where indices repeat — a Pad where they are one ascending run (one
 * index, a scalar one included), else ScatterElements (add) of dy viewed
 * with the indices as one axis. Negative indices count from the end.
 */
export const gatherBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, indicesValue] = node.inputs;
  const label = node.name ?? node.outputs[0];
  if (wants[1]) throw new Error(`Gather ${label}: its indices get no gradient`);
  const raw = ctx.ints(indicesValue);
  if (!raw) throw new Error(`Gather ${label}: only constant indices are supported`);
  const xShape = ctx.shape(x);
  const rank = xShape.length;
  const axis = (intAttribute(node, 'axis', 0) + rank) % rank;
  const dim = xShape[axis];
  const indices = raw.map((i) => (i < 0 ? i + dim : i));
  const name = gradientName(node);
  if (indices.length === 0) return [{ value: ctx.zeros(xShape, name) }];
  const viewed = [...xShape.slice(0, axis), indices.length, ...xShape.slice(axis + 1)];
  const g = ctx.reshape(ctx.materialize(dy), viewed, `${name}.viewed`);
  if (indices.every((index, i) => index === indices[0] + i)) {
    const pads = new Array<number>(2 * rank).fill(0);
    pads[axis] = indices[0];
    pads[rank + axis] = dim - indices[0] - indices.length;
    return [{ value: ctx.op('Pad', [g, ctx.int64(`${name}.pads`, pads)], name, xShape, { mode: { string: 'constant' } }) }];
  }
  const unitShape = viewed.map((size, i) => (i === axis ? size : 1));
  const positions = ctx.builder.constant(`${name}.indices`, int64Tensor(indices, unitShape));
  const expanded = ctx.op('Expand', [positions, ctx.int64(`${name}.indicesShape`, viewed)], `${name}.indicesExpanded`, viewed, undefined, 'int64');
  return [{ value: ctx.op('ScatterElements', [ctx.zeros(xShape, `${name}.zeros`), expanded, g], name, xShape, { axis: { int: axis }, reduction: { string: 'add' } }) }];
};

/** Expand: the gradient summed back over the broadcast axes. */
export const expandBackward: BackwardRule = (ctx, node, dy) => [{ value: reduceTo(ctx, ctx.materialize(dy), ctx.shape(node.inputs[0]), gradientName(node)) }];

/** The last two axes of `value` swapped: a transposed constant where it is one (2-D), else a Transpose node. */
function swapLastAxes(ctx: BackwardContext, value: string): string {
  const shape = ctx.shape(value);
  const rank = shape.length;
  const swapped = [...shape.slice(0, -2), shape[rank - 1], shape[rank - 2]];
  const data = ctx.floats(value);
  if (data && rank === 2) {
    const [rows, cols] = shape;
    const transposed = new Float32Array(data.length);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) transposed[c * rows + r] = data[r * cols + c];
    return ctx.float32(`${value}.transposed`, transposed, swapped);
  }
  const perm = [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
  return ctx.op('Transpose', [value], `${value}.transposed`, swapped, { perm: { ints: perm } });
}

function matMulShape(a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const batch = Array.from({ length: rank - 2 }, (_, i) => Math.max(a[a.length - rank + i] ?? 1, b[b.length - rank + i] ?? 1));
  return [...batch, a[a.length - 2], b[b.length - 1]];
}

export const matMulBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [a, b] = node.inputs;
  if (ctx.shape(a).length < 2 || ctx.shape(b).length < 2) throw new Error(`MatMul ${node.name ?? node.outputs[0]}: 1-D operands are not supported`);
  const g = ctx.materialize(dy);
  const gradientA = (): string => {
    const bT = swapLastAxes(ctx, b);
    const full = ctx.op('MatMul', [g, bT], `${gradientName(node, 0)}.full`, matMulShape(ctx.shape(g), ctx.shape(bT)));
    return reduceTo(ctx, full, ctx.shape(a), gradientName(node, 0));
  };
  const gradientB = (): string => {
    const aT = swapLastAxes(ctx, a);
    const full = ctx.op('MatMul', [aT, g], `${gradientName(node, 1)}.full`, matMulShape(ctx.shape(aT), ctx.shape(g)));
    return reduceTo(ctx, full, ctx.shape(b), gradientName(node, 1));
  };
  return [wants[0] ? { value: gradientA() } : undefined, wants[1] ? { value: gradientB() } : undefined];
};

/** Y = α·A'·B' + β·C (A' = A or Aᵀ, as transA says; B' likewise); each gradient is one Gemm. */
export const gemmBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [a, b, c] = node.inputs;
  const alpha = floatAttribute(node, 'alpha', 1);
  const beta = floatAttribute(node, 'beta', 1);
  const transA = intAttribute(node, 'transA', 0);
  const transB = intAttribute(node, 'transB', 0);
  const g = ctx.materialize(dy);
  const result: (undefined | { value: string })[] = [undefined, undefined, undefined];
  if (wants[0]) {
    // dA' = α·dy·B'ᵀ; dA = dA' or its transpose.
    const value = transA
      ? ctx.op('Gemm', [b, g], gradientName(node, 0), ctx.shape(a), { alpha: { float: alpha }, transA: { int: transB }, transB: { int: 1 } })
      : ctx.op('Gemm', [g, b], gradientName(node, 0), ctx.shape(a), { alpha: { float: alpha }, transB: { int: transB ? 0 : 1 } });
    result[0] = { value };
  }
  if (wants[1]) {
    // dB' = α·A'ᵀ·dy; dB = dB' or its transpose.
    const value = transB
      ? ctx.op('Gemm', [g, a], gradientName(node, 1), ctx.shape(b), { alpha: { float: alpha }, transA: { int: 1 }, transB: { int: transA } })
      : ctx.op('Gemm', [a, g], gradientName(node, 1), ctx.shape(b), { alpha: { float: alpha }, transA: { int: transA ? 0 : 1 } });
    result[1] = { value };
  }
  if (wants[2] && c !== undefined) {
    const scaled = beta === 1 ? g : ctx.op('Mul', [g, ctx.scalar(beta)], `${gradientName(node, 2)}.full`, ctx.shape(g));
    result[2] = { value: reduceTo(ctx, scaled, ctx.shape(c), gradientName(node, 2)) };
  }
  return result;
};

/** Ops that keep their input's elements and order, differing only in shape. */
export const RESHAPING_OPS = ['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze'];

export function isReshaping(node: GraphNode): boolean {
  return RESHAPING_OPS.includes(node.op);
}

/**
 * Tile with constant repeats: each input cell was copied once per tile, so
 * its gradient is dy summed over the tiles (sumCopies, a tile axis before
 * each repeated axis: […, r, d, …]).
 */
export const tileBackward: BackwardRule = (ctx, node, dy) => {
  const [x, repeatsValue] = node.inputs;
  const label = node.name ?? node.outputs[0];
  const repeats = ctx.ints(repeatsValue);
  if (!repeats) throw undifferentiable('Tile', label, 'with repeats computed at run time (only constant ones)');
  return [{ value: sumCopies(ctx, ctx.materialize(dy), ctx.shape(x), repeats, 'before', gradientName(node)) }];
};

/**
 * The gradient of an op that copied each cell of x `factors[i]` times along
 * axis i: dy viewed with a copy axis beside each repeated axis — `before`
 * it where whole tiles repeat (Tile), `after` it where each cell repeats in
 * a block (nearest Resize) — and those axes summed away.
 */
function sumCopies(ctx: BackwardContext, g: string, xShape: readonly number[], factors: readonly number[], copyAxis: 'before' | 'after', name: string): string {
  if (factors.every((f) => f === 1)) return ctx.reshape(g, xShape, name);
  const viewed: number[] = [];
  const axes: number[] = [];
  const copies = (i: number) => {
    if (factors[i] === 1) return;
    axes.push(viewed.length);
    viewed.push(factors[i]);
  };
  xShape.forEach((size, i) => {
    if (copyAxis === 'before') copies(i);
    viewed.push(size);
    if (copyAxis === 'after') copies(i);
  });
  const copied = ctx.reshape(g, viewed, `${name}.copies`);
  return ctx.op('ReduceSum', [copied, ctx.int64(`${name}.axes`, axes)], name, xShape, { keepdims: { int: 0 } });
}

/**
 * DepthToSpace and SpaceToDepth only move values: each one's gradient is the
 * inverse move. DepthToSpace in DCR mode and SpaceToDepth undo each other;
 * DepthToSpace in CRD mode ([N, C, b, b, H, W] → [N, C, H, b, W, b]) is
 * undone by the inverse Reshape, Transpose, Reshape.
 */
export const depthToSpaceBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const label = node.name ?? node.outputs[0];
  const xShape = ctx.shape(x);
  const blocksize = intAttribute(node, 'blocksize', 0);
  if (xShape.length !== 4 || blocksize < 1) throw new Error(`DepthToSpace ${label}: needs a 4-D input and a blocksize, not [${xShape.join(', ')}] and ${blocksize}`);
  const mode = stringAttribute(node, 'mode', 'DCR');
  const g = ctx.materialize(dy);
  const name = gradientName(node);
  if (mode === 'DCR') return [{ value: ctx.op('SpaceToDepth', [g], name, xShape, { blocksize: { int: blocksize } }) }];
  if (mode !== 'CRD') throw new Error(`DepthToSpace ${label}: mode ${mode} is not supported (DCR or CRD)`);
  const [n, c, h, w] = xShape;
  const channels = c / (blocksize * blocksize);
  const blocks = ctx.reshape(g, [n, channels, h, blocksize, w, blocksize], `${name}.blocks`);
  const moved = ctx.op('Transpose', [blocks], `${name}.moved`, [n, channels, blocksize, blocksize, h, w], { perm: { ints: [0, 1, 3, 5, 2, 4] } });
  return [{ value: ctx.reshape(moved, xShape, name) }];
};

export const spaceToDepthBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const blocksize = intAttribute(node, 'blocksize', 0);
  if (ctx.shape(x).length !== 4 || blocksize < 1) throw new Error(`SpaceToDepth ${node.name ?? node.outputs[0]}: needs a 4-D input and a blocksize`);
  return [{ value: ctx.op('DepthToSpace', [ctx.materialize(dy)], gradientName(node), ctx.shape(x), { blocksize: { int: blocksize }, mode: { string: 'DCR' } }) }];
};

/**
 * Resize in nearest mode by whole factors s, where each output cell reads
 * input cell ⌊o/s⌋ — coordinate_transformation_mode asymmetric with
 * nearest_mode floor (PyTorch's nn.Upsample(scale_factor=…) export), or
 * half_pixel/pytorch_half_pixel with round_prefer_floor or round_prefer_ceil
 * (o/s − ½ + 1/(2s) rounds to ⌊o/s⌋ too): each input cell was copied to an
 * s-block, so its gradient is dy summed over its block (sumCopies, a block
 * axis after each upsampled axis). Other modes and factors have no rule.
 */
export const resizeBackward: BackwardRule = (ctx, node, dy, wants) => {
  const x = node.inputs[0];
  const label = node.name ?? node.outputs[0];
  if (wants.some((wanted, i) => wanted && i > 0)) throw new Error(`Resize ${label}: only its input gets a gradient, not its roi, scales or sizes`);
  const mode = stringAttribute(node, 'mode', 'nearest');
  const transform = stringAttribute(node, 'coordinate_transformation_mode', 'half_pixel');
  const nearest = stringAttribute(node, 'nearest_mode', 'round_prefer_floor');
  const blockCopy = (transform === 'asymmetric' && nearest === 'floor')
    || ((transform === 'half_pixel' || transform === 'pytorch_half_pixel') && (nearest === 'round_prefer_floor' || nearest === 'round_prefer_ceil'));
  if (mode !== 'nearest' || !blockCopy) {
    throw undifferentiable('Resize', label, `in mode ${mode} with ${transform} and ${nearest} (only nearest copying whole blocks: asymmetric with floor, or half_pixel with round_prefer_floor/ceil)`);
  }
  if (node.inputs.length < 3) throw undifferentiable('Resize', label, 'in its opset-10 form (scales as its second input)');
  if (intsAttribute(node, 'axes')) throw undifferentiable('Resize', label, 'with an axes attribute');
  const xShape = ctx.shape(x);
  const yShape = ctx.shape(node.outputs[0]);
  const scales = node.inputs[2] ? ctx.floats(node.inputs[2]) : undefined;
  const factors = xShape.map((size, i) => yShape[i] / size);
  const whole = factors.every((f, i) => Number.isInteger(f) && f >= 1 && (!scales || scales.length === 0 || scales[i] === f));
  if (!whole) throw undifferentiable('Resize', label, `from [${xShape.join(', ')}] to [${yShape.join(', ')}]${scales && scales.length > 0 ? ` by scales [${Array.from(scales).join(', ')}]` : ''} (only whole upsampling factors)`);
  return [{ value: sumCopies(ctx, ctx.materialize(dy), xShape, factors, 'after', gradientName(node)) }];
};
