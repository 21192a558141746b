/**
 * ONNX graphs as salgrid builds them in memory before they are written as
 * protobuf: nodes in topological order, constant tensors (weights), and a
 * static shape for every value. Shapes are static because a session is built
 * per (model, graph kind, layers, batch shape); the exporter and the gradient
 * builder both rely on knowing every shape when they emit a node.
 *
 * Layout: values are NCHW inside the graph (ONNX's convention for Conv and
 * pooling); the graphs salgrid exports take and return NHWC at their edges,
 * as the tfjs engine does.
 */

export type DataType = 'float32' | 'int64' | 'int32' | 'bool';

export type TensorData = Float32Array | BigInt64Array | Int32Array | Uint8Array;

/** A constant tensor: an initializer, or a Constant node's value. */
export interface ConstantTensor {
  readonly dtype: DataType;
  readonly dims: readonly number[];
  readonly data: TensorData;
}

/** An attribute value, typed as ONNX types it (an int is not a float). */
export type Attribute =
  | { readonly int: number }
  | { readonly float: number }
  | { readonly ints: readonly number[] }
  | { readonly floats: readonly number[] }
  | { readonly string: string }
  | { readonly tensor: ConstantTensor };

export interface GraphNode {
  readonly op: string;
  /** The operator's domain where it is not ONNX's own (e.g. ONNX Runtime's com.microsoft.nchwc). */
  readonly domain?: string;
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes?: Readonly<Record<string, Attribute>>;
  /** Node name, e.g. the torch module path it belongs to. */
  readonly name?: string;
}

export interface ValueInfo {
  readonly name: string;
  readonly dtype: DataType;
  readonly shape: readonly number[];
}

export interface Graph {
  readonly name: string;
  readonly inputs: readonly ValueInfo[];
  readonly outputs: readonly ValueInfo[];
  readonly nodes: readonly GraphNode[];
  /** Weights and other constants, by value name. */
  readonly initializers: ReadonlyMap<string, ConstantTensor>;
  /** The static shape and type of every value: inputs, initializers, and every node output. */
  readonly values: ReadonlyMap<string, ValueInfo>;
}

export const int = (value: number): Attribute => ({ int: value });
export const float = (value: number): Attribute => ({ float: value });
export const ints = (value: readonly number[]): Attribute => ({ ints: value });
export const floats = (value: readonly number[]): Attribute => ({ floats: value });

export function int64Tensor(values: readonly number[], dims: readonly number[] = [values.length]): ConstantTensor {
  return { dtype: 'int64', dims, data: BigInt64Array.from(values.map((v) => BigInt(v))) };
}

export function float32Tensor(values: ArrayLike<number>, dims: readonly number[]): ConstantTensor {
  return { dtype: 'float32', dims, data: values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>) };
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
