/**
 * Reads an ONNX model file (as `torch.onnx.export` writes it) into salgrid's
 * graph vocabulary (graph.ts): its nodes with typed attributes, its weights as
 * constant tensors, and its one image input and class-score output with the
 * dimensions the file declares (a dynamic batch is a named dimension). Shapes
 * of the values inside are not in such files; static-graph.ts infers them
 * for a given batch.
 *
 * Opsets 13–17 of the default domain are read (what torchvision's CNNs export
 * to); the graph is then written back as opset 17, which reads every op of
 * those opsets the same way.
 */
import onnxProto from 'onnx-proto';
import { UserError } from '../../errors.ts';
import type { Attribute, ConstantTensor, DataType, GraphNode } from './graph.ts';

const { onnx } = onnxProto;

export const FIRST_OPSET = 13;
export const LAST_OPSET = 17;

/** A dimension as the file declares it: a size, or the name of a dynamic one (`n`, `batch_size`). */
export type DeclaredDim = number | string;

export interface DeclaredValue {
  readonly name: string;
  readonly dtype: DataType;
  readonly dims: readonly DeclaredDim[];
}

export interface OnnxModelFile {
  /** Where the model came from, for messages. */
  readonly source: string;
  readonly opset: number;
  /** Nodes in the file's order (topological, as ONNX requires). */
  readonly nodes: readonly GraphNode[];
  readonly initializers: ReadonlyMap<string, ConstantTensor>;
  /** The one input that is not a weight. */
  readonly input: DeclaredValue;
  /** The first output: the class scores. */
  readonly output: DeclaredValue;
  readonly producer: string;
}

const { DataType: ProtoType } = onnx.TensorProto;

function dataType(code: number, what: string, source: string): DataType {
  switch (code) {
    case ProtoType.FLOAT:
      return 'float32';
    case ProtoType.INT64:
      return 'int64';
    case ProtoType.INT32:
      return 'int32';
    case ProtoType.BOOL:
      return 'bool';
    default: {
      const name = ProtoType[code] ?? String(code);
      throw new UserError(`${source}: ${what} is of type ${name}, which salgrid's ONNX engine does not read (float32, int64, int32 and bool); export the model in float32.`);
    }
  }
}

const toNumber = (value: number | { toNumber(): number }): number => (typeof value === 'number' ? value : value.toNumber());

function tensorData(proto: onnxProto.onnx.ITensorProto, dtype: DataType, count: number, what: string, source: string): ConstantTensor['data'] {
  if (proto.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new UserError(`${source}: ${what} is stored in an external data file, which salgrid does not read; export the model without external data (models under 2 GB need none).`);
  }
  const raw = proto.rawData;
  if (raw && raw.length > 0) {
    // A copy: the decoder's buffer may not be aligned for the typed array.
    const bytes = new Uint8Array(raw);
    switch (dtype) {
      case 'float32':
        return new Float32Array(bytes.buffer, bytes.byteOffset, count);
      case 'int64':
        return new BigInt64Array(bytes.buffer, bytes.byteOffset, count);
      case 'int32':
        return new Int32Array(bytes.buffer, bytes.byteOffset, count);
      case 'bool':
        return new Uint8Array(bytes.buffer, bytes.byteOffset, count);
    }
  }
  switch (dtype) {
    case 'float32':
      return Float32Array.from(proto.floatData ?? []);
    case 'int64':
      return BigInt64Array.from((proto.int64Data ?? []).map((v) => BigInt(toNumber(v))));
    case 'int32':
      return Int32Array.from(proto.int32Data ?? []);
    case 'bool':
      return Uint8Array.from(proto.int32Data ?? []);
  }
}

export function constantTensor(proto: onnxProto.onnx.ITensorProto, what: string, source: string): ConstantTensor {
  const dtype = dataType(proto.dataType ?? 0, what, source);
  const dims = (proto.dims ?? []).map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const data = tensorData(proto, dtype, count, what, source);
  if (data.length !== count) throw new UserError(`${source}: ${what} holds ${data.length} values for shape [${dims.join(', ')}]; the file is damaged.`);
  return { dtype, dims, data };
}

function attribute(proto: onnxProto.onnx.IAttributeProto, where: string, source: string): Attribute | undefined {
  const { AttributeType } = onnx.AttributeProto;
  switch (proto.type) {
    case AttributeType.INT:
      return { int: toNumber(proto.i ?? 0) };
    case AttributeType.FLOAT:
      return { float: proto.f ?? 0 };
    case AttributeType.INTS:
      return { ints: (proto.ints ?? []).map(toNumber) };
    case AttributeType.FLOATS:
      return { floats: [...(proto.floats ?? [])] };
    case AttributeType.STRING:
      return { string: new TextDecoder().decode(proto.s ?? new Uint8Array()) };
    case AttributeType.TENSOR:
      return { tensor: constantTensor(proto.t ?? {}, `the ${proto.name} of ${where}`, source) };
    default:
      throw new UserError(`${source}: ${where} has attribute ${proto.name} of a kind salgrid does not read (${AttributeType[proto.type ?? 0] ?? proto.type}); control flow (If, Loop, Scan) is not supported in image classifiers salgrid explains.`);
  }
}

function declared(proto: onnxProto.onnx.IValueInfoProto, source: string): DeclaredValue {
  const tensorType = proto.type?.tensorType;
  if (!tensorType) throw new UserError(`${source}: ${proto.name} is not a tensor; salgrid takes models whose input is an image tensor and whose output is class scores.`);
  const dims = (tensorType.shape?.dim ?? []).map((dim) => (dim.dimValue !== undefined && dim.dimValue !== null && toNumber(dim.dimValue) > 0 ? toNumber(dim.dimValue) : (dim.dimParam || '?')));
  return { name: proto.name ?? '', dtype: dataType(tensorType.elemType ?? 0, `value ${proto.name}`, source), dims };
}

/** Decodes `bytes` (a `.onnx` file's contents); `source` names it in errors. */
export function readOnnxModel(bytes: Uint8Array, source: string): OnnxModelFile {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new UserError(`${source} is not an ONNX model file (${(error as Error).message}); give a file written by torch.onnx.export or another ONNX exporter.`);
  }
  const graph = model.graph;
  if (!graph || (graph.node ?? []).length === 0) throw new UserError(`${source} holds no ONNX graph; give a file written by torch.onnx.export or another ONNX exporter.`);
  const defaultDomain = (model.opsetImport ?? []).find((entry) => (entry.domain ?? '') === '' || entry.domain === 'ai.onnx');
  const opset = defaultDomain ? toNumber(defaultDomain.version ?? 0) : 0;
  if (opset < FIRST_OPSET || opset > LAST_OPSET) {
    throw new UserError(`${source} was exported with ONNX opset ${opset}; salgrid reads opsets ${FIRST_OPSET}–${LAST_OPSET}: export again with torch.onnx.export(..., opset_version=${LAST_OPSET}).`);
  }
  const initializers = new Map<string, ConstantTensor>();
  for (const proto of graph.initializer ?? []) initializers.set(proto.name ?? '', constantTensor(proto, `weight ${proto.name}`, source));
  const nodes: GraphNode[] = (graph.node ?? []).map((proto, i) => {
    const name = proto.name || `${proto.opType}_${i}`;
    const domain = proto.domain ?? '';
    if (domain !== '' && domain !== 'ai.onnx') {
      throw new UserError(`${source}: node ${name} is ${domain}.${proto.opType}, an op outside the standard ONNX domain; export the model with standard ops only.`);
    }
    const attributes: Record<string, Attribute> = {};
    for (const a of proto.attribute ?? []) {
      const value = attribute(a, `node ${name} (${proto.opType})`, source);
      if (value !== undefined) attributes[a.name ?? ''] = value;
    }
    return { op: proto.opType ?? '', inputs: [...(proto.input ?? [])], outputs: [...(proto.output ?? [])], attributes, name };
  });
  const inputs = (graph.input ?? []).filter((info) => !initializers.has(info.name ?? ''));
  if (inputs.length !== 1) {
    throw new UserError(`${source} takes ${inputs.length} inputs (${inputs.map((info) => info.name).join(', ')}); salgrid explains models with one image input.`);
  }
  const outputs = graph.output ?? [];
  if (outputs.length === 0) throw new UserError(`${source} declares no output; give a classifier whose output is its class scores.`);
  const input = declared(inputs[0], source);
  if (input.dtype !== 'float32') throw new UserError(`${source}: its input ${input.name} is ${input.dtype}; salgrid feeds float32 images.`);
  return { source, opset, nodes, initializers, input, output: declared(outputs[0], source), producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim() };
}
