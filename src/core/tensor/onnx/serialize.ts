/**
 * Writes a Graph (graph.ts) as ONNX ModelProto bytes, opset 17 and IR
 * version 8, through onnx-proto's protobufjs classes rather than a
 * hand-written encoder. Constants travel as raw little-endian bytes (what
 * ONNX Runtime reads fastest), and every value's static shape is written as
 * value_info so that ONNX Runtime's own shape inference checks ours: a
 * mismatch fails the session at creation instead of computing garbage.
 */
import onnxProto from 'onnx-proto';
import type { Attribute, ConstantTensor, DataType, Graph, GraphNode, ValueInfo } from './graph.ts';

const { onnx } = onnxProto;

export const OPSET_VERSION = 17;
export const IR_VERSION = 8;
/** The version imported for each operator domain other than ONNX's that a graph may use. */
const DOMAIN_VERSIONS: Readonly<Record<string, number>> = { 'com.microsoft.nchwc': 1 };

export interface SerializeOptions {
  /** Write value_info for every intermediate value (default true). */
  readonly valueInfo?: boolean;
  /** Declare the first dimension of the graph's inputs and outputs as this symbolic batch (dim_param) instead of its size. */
  readonly batchName?: string;
}

const ELEMENT_TYPE: Record<DataType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
};

/** The tensor's bytes as they lie in memory: little-endian on every platform ONNX Runtime ships for. */
function rawBytes(tensor: ConstantTensor): Uint8Array {
  const { data } = tensor;
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function tensorProto(name: string, tensor: ConstantTensor): onnxProto.onnx.ITensorProto {
  const expected = tensor.dims.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== expected) throw new Error(`constant ${name}: ${tensor.data.length} values for shape [${tensor.dims.join(', ')}]`);
  return { name, dims: [...tensor.dims], dataType: ELEMENT_TYPE[tensor.dtype], rawData: rawBytes(tensor) };
}

function valueInfoProto(info: ValueInfo, batchName?: string): onnxProto.onnx.IValueInfoProto {
  // A negative size is an axis of unknown size (a dimension with neither a value nor a name).
  const dim = info.shape.map((size, i): onnxProto.onnx.TensorShapeProto.IDimension => (i === 0 && batchName !== undefined ? { dimParam: batchName } : size < 0 ? {} : { dimValue: size }));
  return { name: info.name, type: { tensorType: { elemType: ELEMENT_TYPE[info.dtype], shape: { dim } } } };
}

function attributeProto(name: string, attribute: Attribute): onnxProto.onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  if ('int' in attribute) return { name, type: AttributeType.INT, i: attribute.int };
  if ('float' in attribute) return { name, type: AttributeType.FLOAT, f: attribute.float };
  if ('ints' in attribute) return { name, type: AttributeType.INTS, ints: [...attribute.ints] };
  if ('floats' in attribute) return { name, type: AttributeType.FLOATS, floats: [...attribute.floats] };
  if ('string' in attribute) return { name, type: AttributeType.STRING, s: new TextEncoder().encode(attribute.string) };
  return { name, type: AttributeType.TENSOR, t: tensorProto(name, attribute.tensor) };
}

function nodeProto(node: GraphNode): onnxProto.onnx.INodeProto {
  return {
    ...(node.domain !== undefined ? { domain: node.domain } : {}),
    opType: node.op,
    input: [...node.inputs],
    output: [...node.outputs],
    name: node.name ?? '',
    attribute: Object.entries(node.attributes ?? {}).map(([name, value]) => attributeProto(name, value)),
  };
}

/** The graph as an ONNX model file's bytes. */
export function serializeGraph(graph: Graph, options: SerializeOptions = {}): Uint8Array {
  const edges = new Set([...graph.inputs, ...graph.outputs].map((info) => info.name));
  const intermediate = options.valueInfo === false
    ? []
    : [...graph.values.values()].filter((info) => !edges.has(info.name) && !graph.initializers.has(info.name));
  const domains = [...new Set(graph.nodes.flatMap((node) => (node.domain !== undefined ? [node.domain] : [])))];
  for (const domain of domains) if (DOMAIN_VERSIONS[domain] === undefined) throw new Error(`graph ${graph.name}: no version known for operator domain ${domain}`);
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }, ...domains.map((domain) => ({ domain, version: DOMAIN_VERSIONS[domain] }))],
    producerName: 'salgrid',
    graph: {
      name: graph.name,
      node: graph.nodes.map(nodeProto),
      initializer: [...graph.initializers].map(([name, tensor]) => tensorProto(name, tensor)),
      input: graph.inputs.map((info) => valueInfoProto(info, options.batchName)),
      output: graph.outputs.map((info) => valueInfoProto(info, options.batchName)),
      valueInfo: intermediate.map((info) => valueInfoProto(info)),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}
