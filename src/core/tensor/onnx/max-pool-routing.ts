/**
 * Max pooling's backward without the MaxPool node's Indices output, for
 * ONNX Runtime's WebGPU provider, which refuses that output ("pool.cc: The
 * Indices output is not supported yet"); the forward MaxPool runs on the GPU,
 * so the runtime has no other provider to hand the node to.
 *
 * Each window's value goes to the first cell, in row-major window order,
 * that equals the window's maximum (the pooled output): the cell ONNX
 * Runtime's Indices, PyTorch and tfjs's cpu kernels pick. The comparison is
 * exact, since MaxPool returns one of its window's values. Per kernel offset
 * k (K = kernel cells):
 *
 * 1. view_k: the input padded with the lowest float (pads and a ceil-mode
 *    overhang never win), read at offset k with a strided Slice — the cell
 *    at offset k of every window, [N·C, 1, ...out];
 * 2. first_k = (view_k == max) · open_k, with open_0 = 1 and
 *    open_{k+1} = open_k − first_k: 1 where offset k holds the window's first
 *    maximum;
 * 3. v · first_k put back at the input positions of offset k — zeros
 *    inserted between windows (Pad of a unit axis after each spatial axis,
 *    then Reshape) for strides, shifted by the offset less the pads
 *    (Slice, Pad) — and summed over k, which also sums where overlapping
 *    windows share a cell.
 *
 * Only element-wise, Slice, Pad and Reshape nodes: a prefix count by MatMul
 * or a placement by one-hot ConvTranspose would be fewer nodes, but ONNX
 * Runtime 1.23.2's WebGPU kernels give wrong numbers at the shapes they
 * would have here (measured on lavapipe: MatMul with N and K below 8 applies
 * a sigmoid to the product; ConvTranspose to one output channel from an odd
 * number of input channels, 5 or more, in the default NHWC layout). The
 * `first_k` masks are built once per MaxPool node and shared (DeepLift
 * routes two tensors through the same windows).
 */
import type { BackwardContext } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { intsAttribute, windowOf, type Window } from './node-attributes.ts';

/** The lowest float32: padding that never equals a window's maximum. */
const LOWEST_FLOAT32 = -3.4028234663852886e38;

interface FirstMaxima {
  /** Per kernel offset (row-major), [N·C, 1, ...out]: 1 where that offset holds its window's first maximum, else 0. */
  readonly first: readonly string[];
  readonly offsets: readonly (readonly number[])[];
  readonly window: Window;
}

/** Every kernel offset as a multi-index, in row-major order (the last axis fastest). */
function kernelOffsets(kernel: readonly number[]): number[][] {
  let offsets: number[][] = [[]];
  for (const size of kernel) offsets = offsets.flatMap((prefix) => Array.from({ length: size }, (_, i) => [...prefix, i]));
  return offsets;
}

function poolWindow(node: GraphNode, xShape: readonly number[], yShape: readonly number[]): Window {
  const kernel = intsAttribute(node, 'kernel_shape');
  if (!kernel) throw new Error(`MaxPool ${node.name ?? node.outputs[0]} has no kernel_shape`);
  return windowOf(node, xShape, yShape, kernel);
}

const label = (node: GraphNode): string => node.name ?? node.outputs[0];

function firstMaxima(ctx: BackwardContext, node: GraphNode): FirstMaxima {
  return ctx.memo(`firstMaxima:${node.outputs[0]}`, () => {
    const [x, y] = [node.inputs[0], node.outputs[0]];
    const xShape = ctx.shape(x);
    const yShape = ctx.shape(y);
    const rows = xShape[0] * xShape[1];
    const spatialIn = xShape.slice(2);
    const spatialOut = yShape.slice(2);
    const window = poolWindow(node, xShape, yShape);
    const name = `${y}.firstMaxima`;

    // Pads before, and after whichever reaches further: the pads or a ceil-mode window's overhang.
    const extent = window.kernel.map((k, i) => (k - 1) * window.dilations[i] + 1);
    const after = spatialIn.map((size, i) => Math.max(0, (spatialOut[i] - 1) * window.strides[i] + extent[i] - window.before[i] - size));
    const flat = ctx.reshape(x, [rows, 1, ...spatialIn], `${name}.rows`);
    const padded = [...window.before, ...after].some((p) => p > 0)
      ? ctx.op('Pad', [flat, ctx.int64(`${name}.pads`, [0, 0, ...window.before, 0, 0, ...after]), ctx.scalar(LOWEST_FLOAT32)], `${name}.padded`, [rows, 1, ...spatialIn.map((size, i) => size + window.before[i] + after[i])], {
          mode: { string: 'constant' },
        })
      : flat;

    const viewShape = [rows, 1, ...spatialOut];
    const pooled = ctx.reshape(y, viewShape, `${name}.max`);
    const axes = ctx.int64(`${name}.axes`, spatialIn.map((_, i) => i + 2));
    const steps = ctx.int64(`${name}.steps`, window.strides);
    const offsets = kernelOffsets(window.kernel);
    const first: string[] = [];
    let open: string | undefined;
    offsets.forEach((offset, k) => {
      const starts = offset.map((o, i) => o * window.dilations[i]);
      const ends = starts.map((start, i) => start + (spatialOut[i] - 1) * window.strides[i] + 1);
      const view = ctx.op('Slice', [padded, ctx.int64(`${name}.starts${k}`, starts), ctx.int64(`${name}.ends${k}`, ends), axes, steps], `${name}.view${k}`, viewShape);
      const isMax = ctx.op('Equal', [view, pooled], `${name}.isMax${k}`, viewShape, undefined, 'bool');
      const equal = ctx.op('Cast', [isMax], `${name}.equal${k}`, viewShape, { to: { int: 1 } });
      const taken = open === undefined ? equal : ctx.op('Mul', [equal, open], `${name}.first${k}`, viewShape);
      first.push(taken);
      if (k < offsets.length - 1) open = ctx.op('Sub', [open ?? ctx.scalar(1), taken], `${name}.open${k + 1}`, viewShape);
    });
    return { first, offsets, window };
  });
}

/**
 * `values` [rows, 1, ...out] put at the input positions of kernel offset
 * `offset`: window o's value at o·stride + offset·dilation − pads, zeros
 * elsewhere, [rows, 1, ...in]; undefined when no window's cell at that offset
 * lies inside the input.
 */
function placeAtOffset(ctx: BackwardContext, values: string, offset: readonly number[], window: Window, spatialIn: readonly number[], name: string): string | undefined {
  const shape = ctx.shape(values);
  const rows = shape[0];
  const spatialOut = shape.slice(2);
  const rank = spatialOut.length;
  // Zeros between the windows: a unit axis after each spatial axis, padded to the stride, then merged.
  let spread = values;
  let spreadSizes = [...spatialOut];
  if (window.strides.some((s) => s > 1)) {
    const interleaved = spatialOut.flatMap((size) => [size, 1]);
    const unit = ctx.reshape(values, [rows, ...interleaved], `${name}.unit`);
    const padsAfter = spatialOut.flatMap((_, i) => [0, window.strides[i] - 1]);
    const widened = ctx.op('Pad', [unit, ctx.int64(`${name}.spread.pads`, [0, ...interleaved.map(() => 0), 0, ...padsAfter])], `${name}.spread`, [rows, ...spatialOut.flatMap((size, i) => [size, window.strides[i]])], {
      mode: { string: 'constant' },
    });
    spreadSizes = spatialOut.map((size, i) => size * window.strides[i]);
    spread = ctx.reshape(widened, [rows, 1, ...spreadSizes], `${name}.spread.merged`);
  }
  // Shift by offset·dilation − pads: crop what falls before the input, pad up to the input's size.
  const shift = offset.map((o, i) => o * window.dilations[i] - window.before[i]);
  const cropStart = shift.map((s) => Math.max(0, -s));
  const padStart = shift.map((s) => Math.max(0, s));
  const kept = spreadSizes.map((size, i) => Math.min(size - cropStart[i], spatialIn[i] - padStart[i]));
  if (kept.some((length) => length <= 0)) return undefined;
  const cropped = kept.every((length, i) => cropStart[i] === 0 && length === spreadSizes[i])
    ? spread
    : ctx.op('Slice', [spread, ctx.int64(`${name}.crop.starts`, cropStart), ctx.int64(`${name}.crop.ends`, cropStart.map((start, i) => start + kept[i])), ctx.int64(`${name}.crop.axes`, Array.from({ length: rank }, (_, i) => i + 2))], `${name}.cropped`, [rows, 1, ...kept]);
  const padEnd = kept.map((length, i) => spatialIn[i] - padStart[i] - length);
  if ([...padStart, ...padEnd].every((p) => p === 0)) return cropped;
  return ctx.op('Pad', [cropped, ctx.int64(`${name}.shift.pads`, [0, 0, ...padStart, 0, 0, ...padEnd])], `${name}.placed`, [rows, 1, ...spatialIn], { mode: { string: 'constant' } });
}

/**
 * v (one value per window of MaxPool `node`, shaped as its output) sent to
 * the first maximum of each window in the node's input, summed where windows
 * share a cell: the gradient max pooling passes back.
 */
export function routeToFirstMaxima(ctx: BackwardContext, node: GraphNode, v: string, name: string): string {
  const xShape = ctx.shape(node.inputs[0]);
  const yShape = ctx.shape(node.outputs[0]);
  const rows = xShape[0] * xShape[1];
  const viewShape = [rows, 1, ...yShape.slice(2)];
  const inShape = [rows, 1, ...xShape.slice(2)];
  const { first, offsets, window } = firstMaxima(ctx, node);
  const values = ctx.reshape(v, viewShape, `${name}.rows`);
  const parts = offsets.flatMap((offset, k) => {
    const atMaxima = ctx.op('Mul', [values, first[k]], `${name}.offset${k}`, viewShape);
    const placed = placeAtOffset(ctx, atMaxima, offset, window, xShape.slice(2), `${name}.offset${k}`);
    return placed === undefined ? [] : [placed];
  });
  if (parts.length === 0) throw new Error(`MaxPool ${label(node)}: no window reads its input`);
  const summed = parts.reduce((total, part, i) => (i === 0 ? part : ctx.op('Add', [total, part], `${name}.sum${i}`, inShape)));
  return ctx.reshape(summed, xShape, name);
}
