/**
 * A CNN from an ONNX file (exported by `torch.onnx.export` or another
 * exporter) as the ONNX engine runs it (engine-graphs.ts).
 *
 * Layers are named as in PyTorch: `torch.onnx.export` names a module's nodes
 * by its scope (`/features/features.12/block/...`), so the module
 * `features.12` is the output of the last node in that scope. An ONNX value
 * name works too. The engine feeds NHWC images; an NCHW model (PyTorch's
 * layout) gets a Transpose in front of its input. Each value's layout is
 * followed through the graph (Conv and pooling write NCHW; a Transpose
 * [0, 2, 3, 1] makes it NHWC, as ConvNeXt does around its LayerNorms), so
 * taps come out NHWC.
 */
import { createHash } from 'node:crypto';
import { UserError } from '../../errors.ts';
import { nearestNames } from '../../manifest/suggest.ts';
import type { EngineGraphs, ForwardGraph } from './engine-graphs.ts';
import type { Layout } from './export.ts';
import type { Graph, GraphNode, ValueInfo } from './graph.ts';
import { GraphIndex } from './graph-index.ts';
import { intAttribute, intsAttribute } from './node-attributes.ts';
import type { OnnxModelFile } from './read-model.ts';
import { staticGraph } from './static-graph.ts';

export type InputLayout = 'nchw' | 'nhwc';

export interface ImportedModelOptions {
  /** How the model takes images: `nchw` (PyTorch) or `nhwc`. */
  readonly layout: InputLayout;
  /** [height, width] of its input. */
  readonly inputSize: readonly [number, number];
}

interface ImportedForward extends ForwardGraph {
  /** Module path → the value of its output. */
  readonly modules: ReadonlyMap<string, string>;
  readonly index: GraphIndex;
}

const TO_NCHW = [0, 3, 1, 2];
const TO_NHWC = [0, 2, 3, 1];
/** Ops whose 4-D output is NCHW whatever their input. */
const NCHW_OPS = new Set(['Conv', 'ConvTranspose', 'MaxPool', 'AveragePool', 'LpPool', 'GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool', 'BatchNormalization', 'InstanceNormalization', 'LRN']);

/** Ops that may rearrange values between axes: a 4-D result keeps its input's layout only at the same shape. */
const RESHAPING_OPS = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Expand', 'Tile', 'DepthToSpace', 'SpaceToDepth', 'Gather', 'MatMul', 'Gemm']);

const samePerm = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((v, i) => v === b[i]);

/** Each value's layout, from the input's, through the graph. */
function followLayouts(graph: Graph, input: string, inputLayout: Layout): Map<string, Layout> {
  const layouts = new Map<string, Layout>([[input, inputLayout]]);
  const shape = (value: string) => graph.values.get(value)?.shape ?? [];
  for (const node of graph.nodes) {
    for (const out of node.outputs) {
      if (out === '') continue;
      let layout: Layout = 'flat';
      if (shape(out).length === 4) {
        if (NCHW_OPS.has(node.op)) layout = 'nchw';
        else if (node.op === 'Transpose') {
          const from = layouts.get(node.inputs[0]) ?? 'flat';
          const perm = intsAttribute(node, 'perm') ?? [3, 2, 1, 0];
          if (samePerm(perm, [0, 1, 2, 3])) layout = from;
          else if (from === 'nchw' && samePerm(perm, TO_NHWC)) layout = 'flat';
          else if (from === 'flat' && samePerm(perm, TO_NCHW)) layout = 'nchw';
        } else if (RESHAPING_OPS.has(node.op)) {
          // A reshape keeps the layout only where it keeps the shape.
          const source = node.inputs.find((name) => name !== '' && layouts.has(name) && samePerm(shape(name), shape(out)));
          layout = source !== undefined ? (layouts.get(source) as Layout) : 'flat';
        } else {
          // Element-wise ops, Concat, Pad, Slice, Split, Resize: the layout of their first 4-D input.
          const source = node.inputs.find((name) => name !== '' && shape(name).length === 4 && layouts.has(name));
          layout = source !== undefined ? (layouts.get(source) as Layout) : 'flat';
        }
      }
      layouts.set(out, layout);
    }
  }
  return layouts;
}

/** Module path → its output: the output of the last node in each scope of the node names torch.onnx.export writes. */
function moduleOutputs(nodes: readonly GraphNode[]): Map<string, string> {
  const modules = new Map<string, string>();
  for (const node of nodes) {
    const parts = (node.name ?? '').split('/');
    if (parts.length < 3 || parts[0] !== '') continue;
    for (const scope of parts.slice(1, -1)) if (scope !== '') modules.set(scope, node.outputs[0]);
  }
  return modules;
}

export class ImportedOnnxModel implements EngineGraphs {
  readonly name: string;
  readonly #forwards = new Map<string, ImportedForward>();
  #fingerprint: string | undefined;

  constructor(readonly file: OnnxModelFile, readonly bytes: Uint8Array, readonly options: ImportedModelOptions) {
    this.name = file.source;
  }

  /** Image channels the model takes. */
  channels(): number {
    const dim = this.file.input.dims[this.options.layout === 'nchw' ? 1 : 3];
    if (typeof dim !== 'number') {
      throw new UserError(`${this.file.source} declares its input ${this.file.input.name} as [${this.file.input.dims.join(', ')}]: the channel axis is not fixed, or the layout is not ${this.options.layout}; check the layout param.`);
    }
    return dim;
  }

  fingerprint(): string {
    if (this.#fingerprint === undefined) {
      const hash = createHash('sha256');
      hash.update(`${this.options.layout}|${this.options.inputSize.join('x')}|`);
      hash.update(this.bytes);
      this.#fingerprint = hash.digest('hex');
    }
    return this.#fingerprint;
  }

  classes(): number {
    const forward = this.forward(1, true);
    const shape = forward.graph.values.get(forward.output)?.shape ?? [];
    if (shape.length !== 2) {
      throw new UserError(`${this.file.source} outputs ${this.file.output.name} of shape [${shape.join(', ')}] for one image, not [1, classes]; give a classifier whose first output is its class scores.`);
    }
    return shape[1];
  }

  finalSoftmax(): boolean {
    const { graph, output } = this.forward(1, true);
    const producer = graph.nodes.find((node) => node.outputs[0] === output);
    return producer !== undefined && producer.op === 'Softmax' && this.#lastAxis(producer, graph);
  }

  #lastAxis(node: GraphNode, graph: Graph): boolean {
    const rank = graph.values.get(node.outputs[0])?.shape.length ?? 2;
    const axis = intAttribute(node, 'axis', -1);
    return axis === -1 || axis === rank - 1;
  }

  forward(rows: number, softmax: boolean): ImportedForward {
    const key = `${rows}|${softmax}`;
    const found = this.#forwards.get(key);
    if (found) return found;
    const built = softmax ? this.#build(rows) : this.#withoutSoftmax(this.forward(rows, true));
    this.#forwards.set(key, built);
    return built;
  }

  #build(rows: number): ImportedForward {
    const [height, width] = this.options.inputSize;
    const channels = this.channels();
    let shaped;
    if (this.options.layout === 'nchw') {
      const image: ValueInfo = { name: `${this.file.input.name}:nhwc`, dtype: 'float32', shape: [rows, height, width, channels] };
      const transpose: GraphNode = { op: 'Transpose', inputs: [image.name], outputs: [this.file.input.name], attributes: { perm: { ints: TO_NCHW } }, name: 'salgrid/input:nchw' };
      shaped = staticGraph(this.file, [rows, channels, height, width], { inputs: [image], nodes: [transpose] });
    } else {
      shaped = staticGraph(this.file, [rows, height, width, channels]);
    }
    const { graph, input, output } = shaped;
    const layouts = followLayouts(graph, this.file.input.name, this.options.layout === 'nchw' ? 'nchw' : 'flat');
    layouts.set(input, 'flat');
    return { graph, input, output, layouts, modules: moduleOutputs(graph.nodes), index: new GraphIndex(graph) };
  }

  /** The same graph ending at the final softmax's input (the logits), where it has one. */
  #withoutSoftmax(full: ImportedForward): ImportedForward {
    const producer = full.index.producer(full.output);
    if (!producer || producer.op !== 'Softmax' || !this.#lastAxis(producer, full.graph)) return full;
    const logits = producer.inputs[0];
    const nodes = full.graph.nodes.filter((node) => node !== producer);
    const values = new Map(full.graph.values);
    values.delete(full.output);
    const graph: Graph = { ...full.graph, nodes, values, outputs: [values.get(logits) as ValueInfo] };
    return { ...full, graph, output: logits, index: new GraphIndex(graph) };
  }

  /** The module paths the graph's node names give, in graph order. */
  modulePaths(): string[] {
    return [...this.forward(1, false).modules.keys()];
  }

  value(forward: ForwardGraph, layer: string): string {
    const { modules, graph } = forward as ImportedForward;
    const value = modules.get(layer) ?? (graph.values.has(layer) && !graph.initializers.has(layer) ? layer : undefined);
    if (value !== undefined) return value;
    const names = [...modules.keys()];
    const values = graph.nodes.flatMap((node) => node.outputs.filter((name) => (graph.values.get(name)?.shape.length ?? 0) === 4));
    const hint = names.length > 0
      ? `nearest module paths: ${nearestNames(layer, names).join(', ')}`
      : `its node names carry no module scopes, so give an ONNX value name; nearest 4-D values: ${nearestNames(layer, values).join(', ')}`;
    throw new UserError(`Model ${this.name} has no layer "${layer}"; ${hint}.`);
  }

  reachesScore(forward: ForwardGraph, layer: string): boolean {
    const { index, output } = forward as ImportedForward;
    return index.ancestors([output]).has(this.value(forward, layer));
  }

  /**
   * The default CAM layer: the last 4-D activation before the global pooling
   * (GlobalAveragePool, or a ReduceMean over the spatial axes), named by its
   * module path where a module ends there, else by its value name. Of the
   * modules that end there (`features`, `features.12`, `features.12.2`) it is
   * the shallowest below the top (`features.12`: pytorch-grad-cam's
   * `model.features[-1]`).
   */
  defaultCamLayer(): string {
    const forward = this.forward(1, false);
    const { graph, index, output } = forward;
    const feeding = index.ancestors([output]);
    const pools = graph.nodes.filter((node) => feeding.has(node.outputs[0]) && (node.op === 'GlobalAveragePool' || node.op === 'GlobalMaxPool' || (node.op === 'ReduceMean' && (graph.values.get(node.inputs[0])?.shape.length ?? 0) === 4)));
    const pool = pools.at(-1);
    if (!pool) {
      throw new UserError(`${this.file.source} has no global pooling before its output, so salgrid cannot pick its CAM layer; set camLayer to a module path or value name.`);
    }
    const activation = pool.inputs[0];
    const modules = [...forward.modules].filter(([, value]) => value === activation).map(([name]) => name);
    const depth = (name: string) => name.split('.').length;
    modules.sort((a, b) => depth(a) - depth(b) || a.length - b.length);
    return modules.find((name) => depth(name) > 1) ?? modules[0] ?? activation;
  }
}
