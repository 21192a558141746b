/**
 * Static output shapes of the ONNX ops image classifiers export to, given
 * their inputs' static shapes (and, for shape-like inputs such as Reshape's
 * target, their constant values). salgrid's graphs record every value's
 * shape (graph.ts), so an imported graph gets them here, once per batch size.
 */
import type { ConstantTensor, DataType, GraphNode } from './graph.ts';
import { elementCount } from './graph.ts';
import { CAST_TYPES, broadcastDims, normaliseAxis, reshapeDims, sliceRanges, squeezeDims, unsqueezeDims } from './fold-constants.ts';
import { intAttribute, intsAttribute, stringAttribute } from './node-attributes.ts';

export interface InferredValue {
  readonly shape: readonly number[];
  readonly dtype: DataType;
}

export interface ShapeLookup {
  /** Input i's static shape. */
  shape(i: number): readonly number[];
  dtype(i: number): DataType;
  /** Input i's value where it is a constant. */
  constant(i: number): ConstantTensor | undefined;
}

/** Ops whose output has their first input's shape and type. */
const SAME_SHAPE = new Set([
  'Relu', 'Clip', 'HardSwish', 'HardSigmoid', 'Sigmoid', 'Tanh', 'Erf', 'Elu', 'Selu', 'Celu', 'Softplus', 'Softsign', 'LeakyRelu', 'ThresholdedRelu',
  'Softmax', 'LogSoftmax', 'Hardmax', 'Identity', 'Neg', 'Sqrt', 'Exp', 'Log', 'Abs', 'Reciprocal', 'Floor', 'Ceil', 'Round', 'Sign', 'Sin', 'Cos',
  'Mish', 'Gelu', 'BatchNormalization', 'InstanceNormalization', 'LRN', 'MeanVarianceNormalization', 'Shrink',
]);

const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Sum', 'Mean', 'PRelu', 'Where', 'Mod', 'BitShift']);
const COMPARISONS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor', 'Not']);


function ints(tensor: ConstantTensor | undefined): number[] | undefined {
  return tensor ? Array.from(tensor.data as ArrayLike<number | bigint>, Number) : undefined;
}

/** Output spatial sizes of a window op (Conv, pooling) over [N, C, ...spatial]. */
function windowed(node: GraphNode, input: readonly number[], kernel: readonly number[], ceil: boolean): number[] {
  const rank = kernel.length;
  const strides = intsAttribute(node, 'strides') ?? new Array<number>(rank).fill(1);
  const dilations = intsAttribute(node, 'dilations') ?? new Array<number>(rank).fill(1);
  const autoPad = stringAttribute(node, 'auto_pad', 'NOTSET');
  const pads = intsAttribute(node, 'pads') ?? new Array<number>(2 * rank).fill(0);
  return kernel.map((k, i) => {
    const size = input[i + 2];
    if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(size / strides[i]);
    const extent = (k - 1) * dilations[i] + 1;
    const padded = autoPad === 'VALID' ? size : size + pads[i] + pads[i + rank];
    const steps = (padded - extent) / strides[i];
    let out = (ceil ? Math.ceil(steps) : Math.floor(steps)) + 1;
    // ONNX (as PyTorch): in ceil mode the last window must start inside the input or its left padding.
    if (ceil && autoPad !== 'VALID' && (out - 1) * strides[i] >= size + pads[i]) out -= 1;
    return out;
  });
}

function reduced(node: GraphNode, input: readonly number[], axes: readonly number[] | undefined): number[] {
  const keep = intAttribute(node, 'keepdims', 1) === 1;
  const noop = intAttribute(node, 'noop_with_empty_axes', 0) === 1;
  if ((axes === undefined || axes.length === 0) && noop) return [...input];
  const all = axes === undefined || axes.length === 0;
  const at = new Set((axes ?? []).map((a) => normaliseAxis(a, input.length)));
  return input.flatMap((d, i) => (all || at.has(i) ? (keep ? [1] : []) : [d]));
}

/**
 * The outputs' shapes and types, or undefined for an op this does not know.
 * Throws (plain Error) where the inputs do not fit the op.
 */
export function inferOutputs(node: GraphNode, at: ShapeLookup): InferredValue[] | undefined {
  const x = node.inputs.length > 0 && node.inputs[0] !== '' ? at.shape(0) : [];
  const dtype = node.inputs.length > 0 && node.inputs[0] !== '' ? at.dtype(0) : 'float32';
  const one = (shape: readonly number[], type: DataType = dtype): InferredValue[] => [{ shape, dtype: type }];
  const what = `${node.op} ${node.name ?? node.outputs[0]}`;
  if (SAME_SHAPE.has(node.op)) return node.outputs.map(() => ({ shape: x, dtype }));
  if (BROADCASTING.has(node.op)) {
    const shapes = node.inputs.map((_, i) => at.shape(i));
    return one(broadcastDims(shapes, what), node.op === 'Where' ? at.dtype(1) : dtype);
  }
  if (COMPARISONS.has(node.op)) return one(broadcastDims(node.inputs.map((_, i) => at.shape(i)), what), 'bool');
  switch (node.op) {
    case 'Dropout':
      return node.outputs.map((_, i) => ({ shape: x, dtype: i === 0 ? dtype : 'bool' }));
    case 'Cast': {
      const type = CAST_TYPES[intAttribute(node, 'to', 1)];
      return type ? one(x, type) : undefined;
    }
    case 'LayerNormalization': {
      const axis = normaliseAxis(intAttribute(node, 'axis', -1), x.length);
      const stats = x.map((d, i) => (i < axis ? d : 1));
      return node.outputs.map((_, i) => ({ shape: i === 0 ? x : stats, dtype: 'float32' as DataType }));
    }
    case 'Conv': {
      const w = at.shape(1);
      const kernel = intsAttribute(node, 'kernel_shape') ?? w.slice(2);
      return one([x[0], w[0], ...windowed(node, x, kernel, false)]);
    }
    case 'ConvTranspose': {
      const w = at.shape(1);
      const group = intAttribute(node, 'group', 1);
      const kernel = intsAttribute(node, 'kernel_shape') ?? w.slice(2);
      const rank = kernel.length;
      const explicit = intsAttribute(node, 'output_shape');
      if (explicit) return one([x[0], w[1] * group, ...explicit.slice(-rank)]);
      const strides = intsAttribute(node, 'strides') ?? new Array<number>(rank).fill(1);
      const dilations = intsAttribute(node, 'dilations') ?? new Array<number>(rank).fill(1);
      const pads = intsAttribute(node, 'pads') ?? new Array<number>(2 * rank).fill(0);
      const outputPadding = intsAttribute(node, 'output_padding') ?? new Array<number>(rank).fill(0);
      return one([x[0], w[1] * group, ...kernel.map((k, i) => strides[i] * (x[i + 2] - 1) + outputPadding[i] + (k - 1) * dilations[i] + 1 - pads[i] - pads[i + rank])]);
    }
    case 'MaxPool':
    case 'AveragePool':
    case 'LpPool': {
      const kernel = intsAttribute(node, 'kernel_shape') ?? [];
      const shape = [x[0], x[1], ...windowed(node, x, kernel, intAttribute(node, 'ceil_mode', 0) === 1)];
      return node.outputs.map((_, i) => ({ shape, dtype: i === 0 ? dtype : 'int64' }));
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
    case 'GlobalLpPool':
      return one([x[0], x[1], ...x.slice(2).map(() => 1)]);
    case 'Gemm': {
      const b = at.shape(1);
      const m = intAttribute(node, 'transA', 0) === 1 ? x[1] : x[0];
      const n = intAttribute(node, 'transB', 0) === 1 ? b[0] : b[1];
      return one([m, n]);
    }
    case 'MatMul': {
      const b = at.shape(1);
      const a2 = x.length === 1 ? [1, x[0]] : x;
      const b2 = b.length === 1 ? [b[0], 1] : b;
      const batch = broadcastDims([a2.slice(0, -2), b2.slice(0, -2)], what);
      const shape = [...batch, ...(x.length === 1 ? [] : [a2[a2.length - 2]]), ...(b.length === 1 ? [] : [b2[b2.length - 1]])];
      return one(shape);
    }
    case 'Flatten': {
      const axis = normaliseAxis(intAttribute(node, 'axis', 1), x.length);
      return one([elementCount(x.slice(0, axis)), elementCount(x.slice(axis))]);
    }
    case 'Reshape': {
      const target = ints(at.constant(1));
      if (!target) throw new Error(`${what}: its target shape is computed from the input's values, which a static graph cannot have`);
      const dims = reshapeDims(x, target, intAttribute(node, 'allowzero', 0) === 1);
      if (elementCount(dims) !== elementCount(x) || !dims.every(Number.isInteger)) {
        throw new Error(`its target shape [${target.join(', ')}] does not hold its input [${x.join(', ')}]${target[0] > 0 && target[0] !== x[0] ? ': it fixes the batch size, so the model was exported for one batch size; export it again with dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}' : ''}`);
      }
      return one(dims);
    }
    case 'Transpose': {
      const perm = intsAttribute(node, 'perm') ?? x.map((_, i) => x.length - 1 - i);
      return one(perm.map((p) => x[p]));
    }
    case 'Concat': {
      const axis = normaliseAxis(intAttribute(node, 'axis', 0), x.length);
      const shape = [...x];
      shape[axis] = node.inputs.reduce((sum, _, i) => sum + at.shape(i)[axis], 0);
      return one(shape);
    }
    case 'Split': {
      const axis = normaliseAxis(intAttribute(node, 'axis', 0), x.length);
      const given = ints(node.inputs[1] ? at.constant(1) : undefined) ?? intsAttribute(node, 'split');
      const parts = node.outputs.length;
      const sizes = given ?? Array.from({ length: parts }, (_, i) => Math.min(Math.ceil(x[axis] / parts), x[axis] - i * Math.ceil(x[axis] / parts)));
      return sizes.map((size) => ({ shape: x.map((d, i) => (i === axis ? size : d)), dtype }));
    }
    case 'Slice': {
      const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) => (node.inputs[i] ? ints(at.constant(i)) : undefined));
      if (!starts || !ends) throw new Error(`${what}: its starts and ends are computed from the input's values, which a static graph cannot have`);
      return one(sliceRanges(x, starts, ends, axes, steps).map((r) => r.length));
    }
    case 'Gather': {
      const axis = normaliseAxis(intAttribute(node, 'axis', 0), x.length);
      return one([...x.slice(0, axis), ...at.shape(1), ...x.slice(axis + 1)]);
    }
    case 'Squeeze':
      return one(squeezeDims(x, (node.inputs[1] ? ints(at.constant(1)) : undefined) ?? intsAttribute(node, 'axes')));
    case 'Unsqueeze':
      return one(unsqueezeDims(x, (node.inputs[1] ? ints(at.constant(1)) : undefined) ?? intsAttribute(node, 'axes') ?? []));
    case 'ReduceMean':
    case 'ReduceSum':
    case 'ReduceMax':
    case 'ReduceMin':
    case 'ReduceProd':
    case 'ReduceL2':
    case 'ReduceSumSquare':
    case 'ReduceLogSumExp': {
      const axes = (node.inputs[1] ? ints(at.constant(1)) : undefined) ?? intsAttribute(node, 'axes');
      return one(reduced(node, x, axes));
    }
    case 'ArgMax':
    case 'ArgMin': {
      const axis = normaliseAxis(intAttribute(node, 'axis', 0), x.length);
      const keep = intAttribute(node, 'keepdims', 1) === 1;
      return one(x.flatMap((d, i) => (i === axis ? (keep ? [1] : []) : [d])), 'int64');
    }
    case 'Pad': {
      const pads = ints(node.inputs[1] ? at.constant(1) : undefined) ?? intsAttribute(node, 'pads');
      if (!pads) throw new Error(`${what}: its pads are computed from the input's values, which a static graph cannot have`);
      const axes = (node.inputs[3] ? ints(at.constant(3)) : undefined)?.map((a) => normaliseAxis(a, x.length)) ?? x.map((_, i) => i);
      const shape = [...x];
      axes.forEach((axis, k) => (shape[axis] += pads[k] + pads[k + axes.length]));
      return one(shape);
    }
    case 'Expand': {
      const target = ints(at.constant(1));
      if (!target) throw new Error(`${what}: its shape is computed from the input's values, which a static graph cannot have`);
      return one(broadcastDims([x, target], what));
    }
    case 'Tile': {
      const repeats = ints(at.constant(1));
      if (!repeats) throw new Error(`${what}: its repeats are computed from the input's values, which a static graph cannot have`);
      return one(x.map((d, i) => d * repeats[i]));
    }
    case 'Resize':
    case 'Upsample': {
      const sizes = node.inputs[3] ? ints(at.constant(3)) : undefined;
      if (sizes && sizes.length > 0) return one(sizes);
      const scales = at.constant(node.op === 'Upsample' ? 1 : 2);
      if (!scales || scales.data.length === 0) throw new Error(`${what}: its sizes are computed from the input's values, which a static graph cannot have`);
      return one(x.map((d, i) => Math.floor(d * Number(scales.data[i]))));
    }
    case 'DepthToSpace':
    case 'SpaceToDepth': {
      const b = intAttribute(node, 'blocksize', 1);
      return one(node.op === 'DepthToSpace' ? [x[0], x[1] / (b * b), x[2] * b, x[3] * b] : [x[0], x[1] * b * b, x[2] / b, x[3] / b]);
    }
    default:
      return undefined;
  }
}
