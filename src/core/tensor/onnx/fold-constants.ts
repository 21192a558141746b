/**
 * Evaluates the small computations exported graphs make from constants and
 * shapes alone — `Shape → Gather → Unsqueeze → Concat → Reshape` chains that
 * a dynamic batch leaves, Constant nodes, Identity copies of shared weights —
 * so that a graph built for a static batch holds only the network's own ops,
 * each with a static shape. Values are computed in float64 (shape arithmetic
 * in integers) and stored in the node's output type.
 */
import type { ConstantTensor, DataType, GraphNode } from './graph.ts';
import { elementCount } from './graph.ts';
import { floatAttribute, intAttribute, intsAttribute } from './node-attributes.ts';

/** Ops folded where every input is a constant (Shape: where its input's shape is known). */
export const FOLDABLE_OPS = new Set([
  'Identity', 'Shape', 'Size', 'Gather', 'Unsqueeze', 'Squeeze', 'Concat', 'Cast', 'Reshape', 'Flatten', 'Slice', 'Transpose', 'Expand',
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Equal', 'Less', 'Greater', 'Where', 'Not', 'Neg', 'Sqrt', 'Abs', 'Floor', 'Ceil',
  'ConstantOfShape', 'Range', 'Reciprocal',
]);

/** Constants larger than this are not computed here (a Transpose of a big weight stays a node). */
const MAX_FOLDED_ELEMENTS = 1 << 22;

interface Values {
  readonly dtype: DataType;
  readonly dims: readonly number[];
  readonly data: ArrayLike<number>;
}


function valuesOf(tensor: ConstantTensor): Values {
  const data = tensor.data instanceof BigInt64Array ? Array.from(tensor.data, Number) : tensor.data;
  return { dtype: tensor.dtype, dims: tensor.dims, data };
}

function tensorOf(values: Values): ConstantTensor {
  const { dtype, dims, data } = values;
  switch (dtype) {
    case 'float32':
      return { dtype, dims, data: data instanceof Float32Array ? data : Float32Array.from(data) };
    case 'int64':
      return { dtype, dims, data: BigInt64Array.from(Array.from(data, (v) => BigInt(Math.trunc(v)))) };
    case 'int32':
      return { dtype, dims, data: Int32Array.from(data) };
    case 'bool':
      return { dtype, dims, data: Uint8Array.from(data, (v) => (v ? 1 : 0)) };
  }
}

/** ONNX TensorProto type codes of Cast's `to`, for the types a graph value may have. */
export const CAST_TYPES: Readonly<Record<number, DataType>> = { 1: 'float32', 6: 'int32', 7: 'int64', 9: 'bool' };
/** A constant may also be cast to double: computed here, it is stored as float32. */
const FOLDED_CAST_TYPES: Readonly<Record<number, DataType>> = { ...CAST_TYPES, 11: 'float32' };

export function broadcastDims(shapes: ReadonlyArray<readonly number[]>, what: string): number[] {
  const rank = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let size = 1;
    for (const shape of shapes) {
      const d = shape[i - (rank - shape.length)] ?? 1;
      if (d === 1) continue;
      if (size !== 1 && size !== d) throw new Error(`${what}: shapes [${shapes.map((s) => s.join(', ')).join('] and [')}] do not broadcast`);
      size = d;
    }
    out.push(size);
  }
  return out;
}

const stridesOf = (dims: readonly number[]): number[] => {
  const strides = new Array<number>(dims.length).fill(1);
  for (let i = dims.length - 2; i >= 0; i--) strides[i] = strides[i + 1] * dims[i + 1];
  return strides;
};

/** Reads `values` at every index of `dims`, broadcast: an index function from a flat output position. */
function broadcastReader(values: Values, dims: readonly number[]): (flat: number) => number {
  const offset = dims.length - values.dims.length;
  const outStrides = stridesOf(dims);
  const inStrides = stridesOf(values.dims);
  return (flat) => {
    let at = 0;
    for (let i = 0; i < dims.length; i++) {
      const coordinate = Math.floor(flat / outStrides[i]) % dims[i];
      const j = i - offset;
      if (j >= 0 && values.dims[j] !== 1) at += coordinate * inStrides[j];
    }
    return values.data[at];
  };
}

function elementwise(inputs: Values[], dtype: DataType, fn: (...args: number[]) => number, what: string): Values {
  const dims = broadcastDims(inputs.map((v) => v.dims), what);
  const readers = inputs.map((v) => broadcastReader(v, dims));
  const n = elementCount(dims);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) out[i] = fn(...readers.map((read) => read(i)));
  return { dtype, dims, data: out };
}

/** An ONNX axis attribute (negative: from the end) as an index into `rank` dimensions. */
export const normaliseAxis = (axis: number, rank: number): number => (axis < 0 ? axis + rank : axis);

function gather(data: Values, indices: Values, axis: number): Values {
  const a = normaliseAxis(axis, data.dims.length);
  const outer = elementCount(data.dims.slice(0, a));
  const size = data.dims[a];
  const inner = elementCount(data.dims.slice(a + 1));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < indices.data.length; k++) {
      const index = indices.data[k] < 0 ? indices.data[k] + size : indices.data[k];
      for (let i = 0; i < inner; i++) out.push(data.data[(o * size + index) * inner + i]);
    }
  }
  return { dtype: data.dtype, dims: [...data.dims.slice(0, a), ...indices.dims, ...data.dims.slice(a + 1)], data: out };
}

/** The dims of an ONNX Reshape: 0 copies the input's dimension (allowzero 0), −1 takes the rest. */
export function reshapeDims(input: readonly number[], shape: readonly number[], allowZero: boolean): number[] {
  const dims = shape.map((d, i) => (d === 0 && !allowZero ? input[i] : d));
  const known = dims.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
  return dims.map((d) => (d === -1 ? elementCount(input) / known : d));
}

export function unsqueezeDims(input: readonly number[], axes: readonly number[]): number[] {
  const rank = input.length + axes.length;
  const at = new Set(axes.map((a) => normaliseAxis(a, rank)));
  const dims: number[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) dims.push(at.has(i) ? 1 : input[j++]);
  return dims;
}

export function squeezeDims(input: readonly number[], axes: readonly number[] | undefined): number[] {
  if (axes === undefined) return input.filter((d) => d !== 1);
  const at = new Set(axes.map((a) => normaliseAxis(a, input.length)));
  return input.filter((_, i) => !at.has(i));
}

/** Per axis of `dims`: start, step and length of an ONNX Slice. */
export function sliceRanges(dims: readonly number[], starts: readonly number[], ends: readonly number[], axes: readonly number[] | undefined, steps: readonly number[] | undefined): { start: number; step: number; length: number }[] {
  const ranges = dims.map((d) => ({ start: 0, step: 1, length: d }));
  starts.forEach((s, k) => {
    const axis = normaliseAxis(axes?.[k] ?? k, dims.length);
    const d = dims[axis];
    const step = steps?.[k] ?? 1;
    const clamp = (v: number, low: number, high: number) => Math.min(Math.max(v, low), high);
    let start = s < 0 ? s + d : s;
    let end = ends[k] < 0 ? ends[k] + d : ends[k];
    if (step > 0) {
      start = clamp(start, 0, d);
      end = clamp(end, 0, d);
    } else {
      start = clamp(start, 0, d - 1);
      end = clamp(end, -1, d - 1);
    }
    const length = Math.max(0, Math.ceil((end - start) / step));
    ranges[axis] = { start, step, length };
  });
  return ranges;
}

function slice(data: Values, ranges: { start: number; step: number; length: number }[]): Values {
  const dims = ranges.map((r) => r.length);
  const inStrides = stridesOf(data.dims);
  const outStrides = stridesOf(dims);
  const n = elementCount(dims);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (let a = 0; a < dims.length; a++) at += (ranges[a].start + ranges[a].step * (Math.floor(i / outStrides[a]) % dims[a])) * inStrides[a];
    out[i] = data.data[at];
  }
  return { dtype: data.dtype, dims, data: out };
}

function transpose(data: Values, perm: readonly number[]): Values {
  const dims = perm.map((p) => data.dims[p]);
  const inStrides = stridesOf(data.dims);
  const outStrides = stridesOf(dims);
  const n = elementCount(dims);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let at = 0;
    for (let a = 0; a < dims.length; a++) at += (Math.floor(i / outStrides[a]) % dims[a]) * inStrides[perm[a]];
    out[i] = data.data[at];
  }
  return { dtype: data.dtype, dims, data: out };
}

function concat(parts: Values[], axis: number): Values {
  const rank = parts[0].dims.length;
  const a = normaliseAxis(axis, rank);
  const outer = elementCount(parts[0].dims.slice(0, a));
  const out: number[] = [];
  for (let o = 0; o < outer; o++) {
    for (const part of parts) {
      const block = elementCount(part.dims.slice(a));
      for (let i = 0; i < block; i++) out.push(part.data[o * block + i]);
    }
  }
  const dims = [...parts[0].dims];
  dims[a] = parts.reduce((sum, part) => sum + part.dims[a], 0);
  return { dtype: parts[0].dtype, dims, data: out };
}

const intValues = (values: Values | undefined): number[] | undefined => (values ? Array.from(values.data) : undefined);

const isInteger = (dtype: DataType): boolean => dtype === 'int64' || dtype === 'int32';

const BINARY: Record<string, (a: number, b: number, integer: boolean) => number> = {
  Add: (a, b) => a + b,
  Sub: (a, b) => a - b,
  Mul: (a, b) => a * b,
  Div: (a, b, integer) => (integer ? Math.trunc(a / b) : a / b),
  Pow: (a, b) => a ** b,
  Max: (a, b) => Math.max(a, b),
  Min: (a, b) => Math.min(a, b),
  Equal: (a, b) => Number(a === b),
  Less: (a, b) => Number(a < b),
  Greater: (a, b) => Number(a > b),
};

const UNARY: Record<string, (a: number) => number> = {
  Neg: (a) => -a,
  Sqrt: Math.sqrt,
  Abs: Math.abs,
  Floor: Math.floor,
  Ceil: Math.ceil,
  Not: (a) => Number(!a),
  Reciprocal: (a) => 1 / a,
};

/**
 * The node's outputs where it can be computed here: `constant(i)` is input
 * i's value (undefined: not a constant) and `shape(i)` its static shape
 * (undefined: not known yet). Returns undefined to leave the node in the graph.
 */
export function foldNode(node: GraphNode, constant: (i: number) => ConstantTensor | undefined, shape: (i: number) => readonly number[] | undefined): ConstantTensor[] | undefined {
  if (!FOLDABLE_OPS.has(node.op)) return undefined;
  if (node.op === 'Shape' || node.op === 'Size') {
    const dims = shape(0);
    if (!dims) return undefined;
    if (node.op === 'Size') return [tensorOf({ dtype: 'int64', dims: [], data: [elementCount(dims)] })];
    const rank = dims.length;
    const start = normaliseAxis(Math.max(-rank, Math.min(intAttribute(node, 'start', 0), rank)), rank);
    const endAttr = node.attributes?.end !== undefined ? intAttribute(node, 'end', rank) : rank;
    const end = normaliseAxis(Math.max(-rank, Math.min(endAttr, rank)), rank);
    const picked = dims.slice(start, end);
    return [tensorOf({ dtype: 'int64', dims: [picked.length], data: picked })];
  }
  const inputs: (Values | undefined)[] = [];
  for (let i = 0; i < node.inputs.length; i++) {
    if (node.inputs[i] === '') {
      inputs.push(undefined);
      continue;
    }
    const value = constant(i);
    if (!value) return undefined;
    inputs.push(valuesOf(value));
  }
  const x = inputs[0];
  if (node.op === 'Identity' && x) return [constant(0) as ConstantTensor];
  if (node.op === 'ConstantOfShape') {
    const dims = intValues(x) ?? [];
    if (elementCount(dims) > MAX_FOLDED_ELEMENTS) return undefined;
    const attribute = node.attributes?.value;
    const fill = attribute && 'tensor' in attribute ? valuesOf(attribute.tensor) : { dtype: 'float32' as DataType, dims: [1], data: [0] };
    return [tensorOf({ dtype: fill.dtype, dims, data: new Array<number>(elementCount(dims)).fill(fill.data[0]) })];
  }
  if (!x) return undefined;
  if (elementCount(x.dims) > MAX_FOLDED_ELEMENTS) return undefined;
  const what = `${node.op} ${node.name ?? node.outputs[0]}`;
  const result = ((): Values | undefined => {
    switch (node.op) {
      case 'Cast': {
        const to = FOLDED_CAST_TYPES[intAttribute(node, 'to', 1)];
        if (!to) return undefined;
        return { dtype: to, dims: x.dims, data: Array.from(x.data, (v) => (isInteger(to) ? Math.trunc(v) : to === 'bool' ? Number(v !== 0) : v)) };
      }
      case 'Gather':
        return gather(x, inputs[1] as Values, intAttribute(node, 'axis', 0));
      case 'Unsqueeze':
        return { ...x, dims: unsqueezeDims(x.dims, intValues(inputs[1]) ?? intsAttribute(node, 'axes') ?? []) };
      case 'Squeeze':
        return { ...x, dims: squeezeDims(x.dims, intValues(inputs[1]) ?? intsAttribute(node, 'axes')) };
      case 'Reshape':
        return { ...x, dims: reshapeDims(x.dims, intValues(inputs[1]) ?? [], intAttribute(node, 'allowzero', 0) === 1) };
      case 'Flatten': {
        const axis = normaliseAxis(intAttribute(node, 'axis', 1), x.dims.length);
        return { ...x, dims: [elementCount(x.dims.slice(0, axis)), elementCount(x.dims.slice(axis))] };
      }
      case 'Concat':
        return concat(inputs as Values[], intAttribute(node, 'axis', 0));
      case 'Slice':
        return slice(x, sliceRanges(x.dims, intValues(inputs[1]) ?? [], intValues(inputs[2]) ?? [], intValues(inputs[3]), intValues(inputs[4])));
      case 'Transpose':
        return transpose(x, intsAttribute(node, 'perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i));
      case 'Expand':
        return expand(x, intValues(inputs[1]) ?? [], what);
      case 'Where':
        return elementwise(inputs as Values[], (inputs[1] as Values).dtype, (c, a, b) => (c ? a : b), what);
      case 'Range': {
        const [start, limit, delta] = inputs.map((v) => (v as Values).data[0]);
        const n = Math.max(0, Math.ceil((limit - start) / delta));
        return { dtype: x.dtype, dims: [n], data: Array.from({ length: n }, (_, i) => start + i * delta) };
      }
      default: {
        const binary = BINARY[node.op];
        if (binary) {
          const integer = isInteger(x.dtype);
          const dtype = ['Equal', 'Less', 'Greater'].includes(node.op) ? 'bool' : x.dtype;
          return elementwise(inputs as Values[], dtype, (a, b) => binary(a, b, integer), what);
        }
        const unary = UNARY[node.op];
        if (unary) return { dtype: x.dtype, dims: x.dims, data: Array.from(x.data, unary) };
        return undefined;
      }
    }
  })();
  if (!result) return undefined;
  if (node.op === 'Reshape' || node.op === 'Unsqueeze' || node.op === 'Squeeze' || node.op === 'Flatten') {
    // Same values, new dims: keep the source's storage.
    const source = constant(0) as ConstantTensor;
    return [{ dtype: source.dtype, dims: result.dims, data: source.data }];
  }
  return [tensorOf(result)];
}

function expand(x: Values, shape: readonly number[], what: string): Values {
  const dims = broadcastDims([x.dims, shape], what);
  const read = broadcastReader(x, dims);
  return { dtype: x.dtype, dims, data: Array.from({ length: elementCount(dims) }, (_, i) => read(i)) };
}

/** A Constant node's value, from whichever attribute it is given in. */
export function constantNodeValue(node: GraphNode): ConstantTensor | undefined {
  const a = node.attributes ?? {};
  if (a.value && 'tensor' in a.value) return a.value.tensor;
  if (a.value_float) return tensorOf({ dtype: 'float32', dims: [], data: [floatAttribute(node, 'value_float', 0)] });
  if (a.value_floats && 'floats' in a.value_floats) return tensorOf({ dtype: 'float32', dims: [a.value_floats.floats.length], data: a.value_floats.floats });
  if (a.value_int) return tensorOf({ dtype: 'int64', dims: [], data: [intAttribute(node, 'value_int', 0)] });
  if (a.value_ints && 'ints' in a.value_ints) return tensorOf({ dtype: 'int64', dims: [a.value_ints.ints.length], data: a.value_ints.ints });
  return undefined;
}
