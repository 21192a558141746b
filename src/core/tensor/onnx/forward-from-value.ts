/**
 * The forward pass from a layer with given activations (AblationCAM): a new
 * graph whose input `activations` replaces one value of a forward graph, run
 * on to the scores. The activations may hold many rows (m, e.g. one per
 * ablated channel). Where later nodes also read values that bypass the
 * replaced one (a residual connection around it), those are computed from
 * the network's input, given for 1 image (its rows broadcast, or are
 * expanded, to m where they meet the activations' branch) or for m.
 *
 * Shapes are static: every value that carried the forward graph's batch on
 * axis 0 carries m or the input's rows instead, and Reshape targets that
 * name the batch are rewritten.
 */
import { UserError } from '../../errors.ts';
import type { Graph, GraphNode } from './graph.ts';
import { int64Tensor } from './graph.ts';
import { GraphBuilder } from './graph-builder.ts';
import { GraphIndex } from './graph-index.ts';
import { intAttribute, intsAttribute } from './node-attributes.ts';

export interface ForwardFromValueSpec {
  /** The value whose activations are given. */
  readonly value: string;
  /** Class scores [n, classes]. */
  readonly score: string;
  /** The forward graph's input (default: its only input). */
  readonly input?: string;
  /** Rows of the activations, m (default: the forward graph's batch). */
  readonly rows?: number;
  /** Rows of the input, where the bypass needs it: 1 (broadcast to every row inside the graph) or m (default m). */
  readonly inputRows?: number;
  /** The value's layout: 'nchw' takes the activations NHWC. */
  readonly layout?: 'nchw' | 'flat';
}

export interface ForwardFromValue {
  readonly graph: Graph;
  /** The new graph input replacing `value`, [rows, ...]. */
  readonly activations: string;
  /** The graph input holding the network's input, where values bypassing `value` need it. */
  readonly input?: string;
  /** The output: class scores [rows, classes]. */
  readonly score: string;
}

/** Element-wise ops whose inputs broadcast: an input of 1 row meets m rows without a copy. */
const BROADCASTING = new Set(['Add', 'Sub', 'Mul', 'Div', 'Sum', 'Max', 'Min', 'Where', 'Pow', 'PRelu']);

/** Refuses ops that mix rows, where re-batching would change what they compute. */
function checkRowwise(node: GraphNode, rank: number): void {
  const axis = (value: number) => (value + rank) % rank;
  const mixes =
    (node.op === 'Transpose' && (intsAttribute(node, 'perm') ?? [rank - 1])[0] !== 0) ||
    (['Concat', 'Split', 'Softmax', 'LogSoftmax', 'Gather'].includes(node.op) && axis(intAttribute(node, 'axis', node.op === 'Softmax' ? -1 : 0)) === 0) ||
    (node.op === 'Flatten' && intAttribute(node, 'axis', 1) === 0) ||
    (node.op === 'Gemm' && intAttribute(node, 'transA', 0) === 1);
  if (mixes) throw new Error(`forward from a layer: ${node.op} ${node.name ?? node.outputs[0]} mixes the rows of its batch`);
}

export function buildForwardFromValue(forward: Graph, spec: ForwardFromValueSpec): ForwardFromValue {
  const index = new GraphIndex(forward);
  for (const value of [spec.value, spec.score]) if (!index.has(value)) throw new Error(`forward from a layer: the forward graph has no value named ${value}`);
  const inputName = spec.input ?? forward.inputs[0]?.name;
  if (inputName === undefined || !index.has(inputName)) throw new Error('forward from a layer: the forward graph has no input');
  const batch = index.shape(inputName)[0];
  const rows = spec.rows ?? batch;
  const inputRows = spec.inputRows ?? rows;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`forward from a layer: ${rows} rows of activations`);
  if (inputRows !== 1 && inputRows !== rows) throw new Error(`forward from a layer: the input holds ${inputRows} images for ${rows} rows of activations; give 1 or ${rows}`);
  if (!index.descendants([spec.value]).has(spec.score)) throw new UserError(`The class scores do not depend on ${spec.value}; pick a layer on the path to the output.`);

  // Nodes the score needs once `value` is given: the walk back stops there.
  const wanted = new Set([spec.score]);
  const used = new Set<GraphNode>();
  for (let i = forward.nodes.length - 1; i >= 0; i--) {
    const node = forward.nodes[i];
    if (node.outputs.includes(spec.value) || !node.outputs.some((output) => wanted.has(output))) continue;
    used.add(node);
    for (const input of node.inputs) if (input !== '') wanted.add(input);
  }

  const builder = new GraphBuilder(`${forward.name}.from.${spec.value}`);
  const renamed = new Map<string, string>();
  /** Rows of each batched value in the new graph. */
  const rowsOf = new Map<string, number>();
  const valueShape = index.shape(spec.value);
  const nhwc = spec.layout === 'nchw' && valueShape.length === 4;
  const givenShape = nhwc ? [rows, valueShape[2], valueShape[3], valueShape[1]] : [rows, ...valueShape.slice(1)];
  const activations = builder.addInput('activations', givenShape);
  renamed.set(spec.value, nhwc ? builder.op('Transpose', [activations], `${activations}.nchw`, [rows, ...valueShape.slice(1)], { perm: { ints: [0, 3, 1, 2] } }) : activations);
  rowsOf.set(renamed.get(spec.value) as string, rows);
  let input: string | undefined;
  if (wanted.has(inputName) && inputName !== spec.value) {
    input = builder.addInput('input', [inputRows, ...index.shape(inputName).slice(1)], forward.values.get(inputName)?.dtype);
    renamed.set(inputName, input);
    rowsOf.set(input, inputRows);
  }

  const source = (value: string): string => {
    const known = renamed.get(value);
    if (known !== undefined) return known;
    const constant = forward.initializers.get(value);
    if (!constant) throw new Error(`forward from a layer: ${value} is neither computed nor a constant`);
    const name = builder.constant(value, constant);
    renamed.set(value, name);
    return name;
  };

  for (const node of forward.nodes) {
    if (!used.has(node)) continue;
    let inputs = node.inputs.map((value) => (value === '' ? '' : source(value)));
    const inputRowCounts = inputs.map((value) => rowsOf.get(value));
    const outRows = Math.max(0, ...inputRowCounts.map((count) => count ?? 0));
    if (outRows > 0) {
      checkRowwise(node, index.shape(node.outputs[0]).length);
      if (!BROADCASTING.has(node.op)) {
        inputs = inputs.map((value, i) => {
          const count = inputRowCounts[i];
          if (count === undefined || count === outRows) return value;
          const shape = [outRows, ...builder.shape(value).slice(1)];
          const expanded = builder.op('Expand', [value, builder.int64(`${value}.rows`, shape)], `${value}.repeated`, shape, undefined, builder.dtype(value));
          rowsOf.set(expanded, outRows);
          return expanded;
        });
      }
      if (node.op === 'Reshape') {
        const target = forward.initializers.get(node.inputs[1]);
        const dims = target ? Array.from(target.data as BigInt64Array, Number) : undefined;
        if (!dims) throw new Error(`forward from a layer: Reshape ${node.name ?? node.outputs[0]} has a computed shape`);
        if (dims[0] === batch && index.shape(node.outputs[0])[0] === batch) {
          inputs[1] = builder.constant(`${node.inputs[1]}.rows`, int64Tensor([outRows, ...dims.slice(1)]));
        }
      }
    }
    const outputs = node.outputs.map((value) => {
      const info = forward.values.get(value);
      const shape = index.shape(value);
      return { name: value, shape: outRows > 0 && shape[0] === batch ? [outRows, ...shape.slice(1)] : shape, dtype: info?.dtype };
    });
    const names = builder.node(node.op, inputs, outputs, node.attributes ? { ...node.attributes } : undefined, node.name);
    names.forEach((name, i) => {
      renamed.set(node.outputs[i], name);
      if (outRows > 0 && outputs[i].shape[0] === outRows) rowsOf.set(name, outRows);
    });
  }
  const score = renamed.get(spec.score) as string;
  builder.addOutput(score);
  return { graph: builder.build(), activations, score, ...(input !== undefined ? { input } : {}) };
}
