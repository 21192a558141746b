/**
 * Backward rules of ops that move values without arithmetic (Transpose,
 * Reshape and kin, Identity, Concat, Pad) and of the matrix products MatMul
 * and Gemm (weights constant: only the data operand gets a gradient).
 */
import type { BackwardContext, BackwardRule } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { gradientName, reduceTo } from './backward-elementwise.ts';
import { floatAttribute, intAttribute, intsAttribute, stringAttribute } from './node-attributes.ts';

export const transposeBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const rank = ctx.shape(x).length;
  const perm = intsAttribute(node, 'perm') ?? Array.from({ length: rank }, (_, i) => rank - 1 - i);
  const inverse = new Array<number>(rank);
  perm.forEach((axis, i) => (inverse[axis] = i));
  return [{ value: ctx.op('Transpose', [ctx.materialize(dy)], gradientName(node), ctx.shape(x), { perm: { ints: inverse } }) }];
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
