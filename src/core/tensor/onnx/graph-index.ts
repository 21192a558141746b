/**
 * Lookups over a Graph that graph transformations share: which node writes a
 * value and which read it, which values are constants, and which values
 * depend on which — and dead-node removal for a graph whose outputs changed.
 */
import type { ConstantTensor, Graph, GraphNode } from './graph.ts';
import type { GraphBuilder } from './graph-builder.ts';

export class GraphIndex {
  private readonly producers = new Map<string, GraphNode>();
  private readonly readers = new Map<string, GraphNode[]>();

  constructor(readonly graph: Graph) {
    for (const node of graph.nodes) {
      for (const value of node.outputs) this.producers.set(value, node);
      for (const value of node.inputs) if (value !== '') this.readers.set(value, [...(this.readers.get(value) ?? []), node]);
    }
  }

  has(value: string): boolean {
    return this.graph.values.has(value);
  }

  shape(value: string): readonly number[] {
    const info = this.graph.values.get(value);
    if (!info) throw new Error(`graph ${this.graph.name}: no value named ${value}`);
    return info.shape;
  }

  producer(value: string): GraphNode | undefined {
    return this.producers.get(value);
  }

  consumers(value: string): readonly GraphNode[] {
    return this.readers.get(value) ?? [];
  }

  /** The value's data where it is an initializer or a Constant node's tensor. */
  constant(value: string): ConstantTensor | undefined {
    const initializer = this.graph.initializers.get(value);
    if (initializer) return initializer;
    const node = this.producers.get(value);
    const attribute = node?.op === 'Constant' ? node.attributes?.value : undefined;
    return attribute !== undefined && 'tensor' in attribute ? attribute.tensor : undefined;
  }

  /** `values` and every value they are computed from. */
  ancestors(values: Iterable<string>): Set<string> {
    const found = new Set<string>();
    const stack = [...values];
    while (stack.length > 0) {
      const value = stack.pop() as string;
      if (found.has(value)) continue;
      found.add(value);
      const node = this.producers.get(value);
      if (node) for (const input of node.inputs) if (input !== '') stack.push(input);
    }
    return found;
  }

  /** `values` and every value computed from any of them. */
  descendants(values: Iterable<string>): Set<string> {
    const found = new Set(values);
    for (const node of this.graph.nodes) {
      if (node.inputs.some((input) => found.has(input))) for (const output of node.outputs) found.add(output);
    }
    return found;
  }
}

/**
 * Removes the nodes, constants and value records that the builder's outputs
 * do not need; graph inputs are kept where read, or where listed in `keep`.
 */
export function removeUnusedNodes(builder: GraphBuilder, keep: readonly string[] = []): void {
  const needed = new Set(builder.outputs.map((info) => info.name));
  const kept: GraphNode[] = [];
  for (let i = builder.nodes.length - 1; i >= 0; i--) {
    const node = builder.nodes[i];
    if (!node.outputs.some((value) => needed.has(value))) continue;
    kept.push(node);
    for (const input of node.inputs) if (input !== '') needed.add(input);
  }
  builder.nodes.splice(0, builder.nodes.length, ...kept.reverse());
  for (const name of [...builder.initializers.keys()]) if (!needed.has(name)) builder.initializers.delete(name);
  for (const name of keep) needed.add(name);
  builder.inputs = builder.inputs.filter((info) => needed.has(info.name));
  const written = new Set(builder.nodes.flatMap((node) => node.outputs));
  for (const name of [...builder.values.keys()]) {
    if (!needed.has(name) && !written.has(name)) builder.values.delete(name);
  }
}
