/**
 * Appends nodes to a Graph while keeping its invariants: unique value names,
 * a static shape recorded for every value a node writes, constants stored as
 * initializers. The exporter writes forward graphs with it; the gradient
 * builder extends a forward graph with its backward pass.
 */
import type { Attribute, ConstantTensor, DataType, Graph, GraphNode, ValueInfo } from './graph.ts';
import { float32Tensor, int64Tensor } from './graph.ts';

export class GraphBuilder {
  readonly nodes: GraphNode[] = [];
  readonly initializers = new Map<string, ConstantTensor>();
  readonly values = new Map<string, ValueInfo>();
  inputs: ValueInfo[] = [];
  outputs: ValueInfo[] = [];
  private readonly used = new Set<string>();

  constructor(readonly name: string) {}

  /** A builder that continues `graph` (its nodes, constants and values are shared, not copied). */
  static from(graph: Graph, name = graph.name): GraphBuilder {
    const builder = new GraphBuilder(name);
    builder.nodes.push(...graph.nodes);
    for (const [key, value] of graph.initializers) builder.initializers.set(key, value);
    for (const [key, value] of graph.values) {
      builder.values.set(key, value);
      builder.used.add(key);
    }
    for (const node of graph.nodes) if (node.name) builder.used.add(node.name);
    builder.inputs = [...graph.inputs];
    builder.outputs = [...graph.outputs];
    return builder;
  }

  /** `base`, or `base_1`, `base_2`… whichever is not yet taken. */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.used.has(name); i++) name = `${base}_${i}`;
    this.used.add(name);
    return name;
  }

  shape(value: string): readonly number[] {
    const info = this.values.get(value);
    if (!info) throw new Error(`graph ${this.name}: no value named ${value}`);
    return info.shape;
  }

  dtype(value: string): DataType {
    const info = this.values.get(value);
    if (!info) throw new Error(`graph ${this.name}: no value named ${value}`);
    return info.dtype;
  }

  addInput(name: string, shape: readonly number[], dtype: DataType = 'float32'): string {
    const unique = this.fresh(name);
    const info = { name: unique, dtype, shape };
    this.inputs.push(info);
    this.values.set(unique, info);
    return unique;
  }

  addOutput(value: string): void {
    const info = this.values.get(value);
    if (!info) throw new Error(`graph ${this.name}: cannot output unknown value ${value}`);
    this.outputs.push(info);
  }

  constant(name: string, tensor: ConstantTensor): string {
    const unique = this.fresh(name);
    this.initializers.set(unique, tensor);
    this.values.set(unique, { name: unique, dtype: tensor.dtype, shape: tensor.dims });
    return unique;
  }

  int64(name: string, values: readonly number[]): string {
    return this.constant(name, int64Tensor(values));
  }

  float32(name: string, values: ArrayLike<number>, dims: readonly number[]): string {
    return this.constant(name, float32Tensor(values, dims));
  }

  /**
   * Appends one node and records its outputs' shapes; returns the output
   * names. `outputs` gives each output's preferred name and static shape.
   */
  node(op: string, inputs: readonly string[], outputs: ReadonlyArray<{ name: string; shape: readonly number[]; dtype?: DataType }>, attributes?: Record<string, Attribute>, nodeName?: string): string[] {
    for (const input of inputs) if (input !== '' && !this.values.has(input)) throw new Error(`graph ${this.name}: ${op} reads unknown value ${input}`);
    const names = outputs.map((output) => {
      const name = this.fresh(output.name);
      this.values.set(name, { name, dtype: output.dtype ?? 'float32', shape: output.shape });
      return name;
    });
    this.nodes.push({ op, inputs, outputs: names, attributes, name: this.fresh(nodeName ?? `${op}_${names[0]}`) });
    return names;
  }

  /** A node with one output. */
  op(op: string, inputs: readonly string[], name: string, shape: readonly number[], attributes?: Record<string, Attribute>, dtype?: DataType): string {
    return this.node(op, inputs, [{ name, shape, dtype }], attributes)[0];
  }

  build(): Graph {
    return { name: this.name, inputs: this.inputs, outputs: this.outputs, nodes: this.nodes, initializers: this.initializers, values: this.values };
  }
}
