/**
 * The native engine: `ModelEngine` on ONNX Runtime. The tfjs layers-model
 * stays the source of truth; each graph an explainer needs — class scores,
 * layer taps, gradients under a backward rule, the forward from a layer — is
 * exported from it (onnx/export.ts), extended by salgrid's own reverse-mode
 * builder (onnx/gradient.ts), and compiled into a session once per (graph
 * kind, layers, rule, batch rows), then reused.
 *
 * Sessions are kept per process, keyed by the model's contents (topology and
 * weights) and the graph: a worker that runs one model's explainers and
 * metrics task after task builds each session once, whichever task loads the
 * model. Sessions have static shapes, so rows are padded up to a power of two (at
 * most a cap that bounds memory): a handful of sessions serves every batch
 * size an explainer asks for, and a request larger than the cap runs in
 * chunks. Padded rows are zeros with a zero target mask: images do not
 * interact in inference, so they change nothing.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { isHostImages, type EngineInfo, type GradientRequest, type Gradients, type HostImages, type LayerGradient, type ModelEngine, type ScoreOptions } from './engine.ts';
import type { OnnxDevice } from './engine-choice.ts';
import type { EngineGraphs } from './onnx/engine-graphs.ts';
import { addNhwcOutputs } from './onnx/export.ts';
import { buildForwardFromValue, buildGradientGraph } from './onnx/gradient.ts';
import { GraphBuilder } from './onnx/graph-builder.ts';
import type { Graph } from './onnx/graph.ts';
import { LayersModelGraphs } from './onnx/layers-model-graphs.ts';
import { OnnxSession, type HostTensor } from './onnx/session.ts';

export interface OnnxEngineOptions {
  readonly device: OnnxDevice;
  readonly threads: number;
  /** Layers the modified backward rules leave plain (createEngine's EngineModelOptions). */
  readonly functionalLayers?: readonly string[];
}

/** Pixels (rows × height × width) one session call takes at most: bounds the memory a gradient graph holds. */
const MAX_PIXELS_PER_CALL = 16 * 224 * 224;
/** Sessions kept in this process, all models together; the least recently used beyond this are released. */
const MAX_SESSIONS = 12;

/** Compiled sessions by `fingerprint|device|threads|graph key`, most recently used last. */
const sessions = new Map<string, Promise<Compiled>>();

/** Releases every session this process keeps (tests; a process about to exit). */
export async function releaseOnnxSessions(): Promise<void> {
  const pending = [...sessions.values()];
  sessions.clear();
  await Promise.all(pending.map((p) => p.then((compiled) => compiled.session.release(), () => {})));
}

interface Compiled {
  session: OnnxSession;
  /** Input names in the order `run` takes them. */
  inputs: string[];
  /** Output names in the order `run` returns them. */
  outputs: string[];
}

const nextPowerOfTwo = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

/** A tensor's values as a Float32Array (the backend's own buffer where it is one). */
export function hostOf(tensor: tf.Tensor): Float32Array {
  const data = tensor.dataSync();
  return data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
}

/** Rows [start, start + count) of `data` (rows of `rowSize`), zero-padded to `rows`. */
function paddedRows(data: Float32Array, rowSize: number, start: number, count: number, rows: number): Float32Array {
  if (start === 0 && count === rows && data.length === rows * rowSize) return data;
  const out = new Float32Array(rows * rowSize);
  out.set(data.subarray(start * rowSize, (start + count) * rowSize));
  return out;
}

function oneHot(targets: readonly number[], start: number, count: number, rows: number, classes: number): Float32Array {
  const mask = new Float32Array(rows * classes);
  for (let i = 0; i < count; i++) mask[i * classes + targets[start + i]] = 1;
  return mask;
}

/** Joins the first `counts[k]` rows of each chunk's output into one tensor. */
function joinRows(parts: HostTensor[], counts: number[]): tf.Tensor {
  const rowSize = parts[0].shape.slice(1).reduce((a, b) => a * b, 1);
  const total = counts.reduce((a, b) => a + b, 0);
  const shape = [total, ...parts[0].shape.slice(1)];
  if (parts.length === 1 && parts[0].shape[0] === total) return tf.tensor(parts[0].data, shape, 'float32');
  const out = new Float32Array(total * rowSize);
  let offset = 0;
  parts.forEach((part, k) => {
    out.set(part.data.subarray(0, counts[k] * rowSize), offset);
    offset += counts[k] * rowSize;
  });
  return tf.tensor(out, shape, 'float32');
}

export class OnnxEngine implements ModelEngine {
  readonly info: EngineInfo;
  readonly #model: EngineGraphs;
  readonly #options: OnnxEngineOptions;
  #disposed = false;
  #finalSoftmax: boolean | undefined;

  /** An engine on a tfjs layers-model (its graphs exported) or on any other source of graphs (an imported ONNX file). */
  constructor(model: tf.LayersModel | EngineGraphs, options: OnnxEngineOptions) {
    this.#model = typeof (model as EngineGraphs).fingerprint === 'function' ? (model as EngineGraphs) : new LayersModelGraphs(model as tf.LayersModel);
    this.#options = options;
    this.info = { engine: 'onnx', device: options.device, threads: options.threads };
  }

  // ------------------------------------------------------------ public interface

  async scores(x: tf.Tensor4D | HostImages, options: ScoreOptions = {}): Promise<tf.Tensor2D> {
    const softmax = this.#keepsSoftmax(options);
    return (await this.#rowwise(x, (rows) => this.#compiled(`scores|${rows}|${softmax}`, () => {
      const exported = this.#model.forward(rows, softmax);
      return { graph: exported.graph, inputs: [exported.input], outputs: [exported.output] };
    })))[0] as tf.Tensor2D;
  }

  async layerOutputs(x: tf.Tensor4D, layers: readonly string[]): Promise<tf.Tensor[]> {
    if (layers.length === 0) return [];
    const unique = [...new Set(layers)];
    const outputs = await this.#rowwise(x, (rows) => this.#compiled(`taps|${rows}|${unique.join(',')}`, () => {
      const exported = this.#model.forward(rows, false);
      const values = unique.map((layer) => this.#model.value(exported, layer));
      const builder = GraphBuilder.from(exported.graph);
      builder.outputs = [];
      const names = addNhwcOutputs(builder, exported.layouts, values);
      return { graph: builder.build(), inputs: [exported.input], outputs: names };
    }));
    return layers.map((layer, i) => (layers.indexOf(layer) === i ? outputs[unique.indexOf(layer)] : tf.clone(outputs[unique.indexOf(layer)])));
  }

  async gradients(x: tf.Tensor4D, targets: readonly number[], request: GradientRequest): Promise<Gradients> {
    const rule = request.rule ?? 'plain';
    const layers = request.layers ?? [];
    const wantsInput = request.input === true;
    if (layers.length === 0 && !wantsInput) throw new Error('gradients: ask for layers, the input gradient, or both');
    if (rule !== 'plain' && (layers.length > 0 || !wantsInput)) throw new Error(`the ${rule} backward rule gives the input gradient alone; ask for it (input: true) and for no layers`);
    if (rule !== 'plain' && request.beforeSoftmax === false) throw new Error(`the ${rule} backward rule scores the logits; beforeSoftmax: false is not supported with it`);
    const n = x.shape[0];
    if (targets.length !== n) throw new UserError(`${targets.length} target class(es) given for a batch of ${n} image(s); give one per image.`);
    const classes = this.#model.classes();
    const bad = targets.find((t) => !Number.isInteger(t) || t < 0 || t >= classes);
    if (bad !== undefined) throw new UserError(`Target class ${bad} does not exist: the model scores ${classes} classes (0…${classes - 1}).`);
    const softmax = this.#keepsSoftmax(request);
    const unique = [...new Set(layers)];
    const functional = rule === 'plain' ? '' : (this.#options.functionalLayers ?? []).join(',');
    const key = (rows: number) => `grad|${rows}|${rule}|${functional}|${softmax}|${wantsInput}|${unique.join(',')}`;
    const build = (rows: number) => () => {
      const exported = this.#model.forward(rows, softmax);
      const values = unique.map((layer) => this.#model.value(exported, layer));
      for (const layer of unique) {
        if (!this.#model.reachesScore(exported, layer)) throw new UserError(`The output of model ${this.#model.name} does not depend on layer "${layer}"; pick one on the path to the output.`);
      }
      const plainValues = rule === 'plain' ? undefined : new Set((this.#options.functionalLayers ?? []).map((layer) => this.#model.value(exported, layer)));
      const built = buildGradientGraph(exported.graph, { input: exported.input, score: exported.output, layers: values, inputGradient: wantsInput, rule, layouts: exported.layouts, device: this.#options.device, ...(plainValues ? { plainValues } : {}) });
      const outputs = [...built.activations, ...built.gradients, ...(wantsInput && built.input !== undefined ? [built.input] : [])];
      return { graph: built.graph, inputs: [exported.input, built.targets], outputs };
    };
    const results = rule === 'deeplift'
      ? await this.#pairwise(x, targets, classes, (rows) => this.#compiled(key(rows), build(rows)))
      : await this.#rowwise(x, (rows) => this.#compiled(key(rows), build(rows)), (start, count, rows) => oneHot(targets, start, count, rows, classes), classes);
    const m = unique.length;
    const layerResults: LayerGradient[] = layers.map((layer, i) => {
      const j = unique.indexOf(layer);
      const first = layers.indexOf(layer) === i;
      return { activations: first ? results[j] : tf.clone(results[j]), gradients: first ? results[m + j] : tf.clone(results[m + j]) };
    });
    return { layers: layerResults, input: wantsInput ? (results[2 * m] as tf.Tensor4D) : undefined };
  }

  async forwardFromLayer(layer: string, activations: tf.Tensor, options: ScoreOptions & { readonly input?: tf.Tensor4D } = {}): Promise<tf.Tensor2D> {
    const softmax = this.#keepsSoftmax(options);
    const rows = activations.shape[0];
    const input = options.input;
    if (input !== undefined && input.shape[0] !== 1 && input.shape[0] !== rows) {
      throw new Error(`forwardFromLayer: the input holds ${input.shape[0]} images for ${rows} rows of activations; give 1 or ${rows}`);
    }
    const oneImage = input !== undefined && input.shape[0] === 1;
    const activationData = hostOf(activations);
    const activationRow = activations.size / rows;
    const inputData = input ? hostOf(input) : undefined;
    const inputRow = input ? input.size / input.shape[0] : 0;
    const [h, w] = activations.rank === 4 ? [activations.shape[1] as number, activations.shape[2] as number] : [1, 1];
    const cap = Math.max(1, Math.floor(MAX_PIXELS_PER_CALL / (h * w)));
    const parts: HostTensor[] = [];
    const counts: number[] = [];
    for (let start = 0; start < rows; start += cap) {
      const count = Math.min(cap, rows - start);
      const bucket = Math.min(nextPowerOfTwo(count), nextPowerOfTwo(cap));
      const compiled = await this.#compiled(`from|${layer}|${bucket}|${softmax}|${oneImage}`, () => {
        const exported = this.#model.forward(bucket, softmax);
        const value = this.#model.value(exported, layer);
        if (!this.#model.reachesScore(exported, layer)) throw new UserError(`The output of model ${this.#model.name} does not depend on layer "${layer}"; pick one on the path to the output.`);
        const built = buildForwardFromValue(exported.graph, { value, score: exported.output, input: exported.input, rows: bucket, inputRows: oneImage ? 1 : bucket, layout: exported.layouts.get(value) ?? 'flat' });
        return { graph: built.graph, inputs: [built.activations, ...(built.input ? [built.input] : [])], outputs: [built.score] };
      });
      const feeds: HostTensor[] = [{ data: paddedRows(activationData, activationRow, start, count, bucket), shape: [bucket, ...activations.shape.slice(1)] }];
      if (compiled.inputs.length > 1) {
        if (!inputData || !input) {
          throw new UserError(`Layers after "${layer}" in model ${this.#model.name} also read values that bypass it (e.g. a residual connection); the network's input is needed to compute them.`);
        }
        feeds.push(oneImage ? { data: inputData, shape: [...input.shape] } : { data: paddedRows(inputData, inputRow, start, count, bucket), shape: [bucket, ...input.shape.slice(1)] });
      }
      const [scores] = await this.#run(compiled, feeds);
      parts.push(scores);
      counts.push(count);
    }
    return joinRows(parts, counts) as tf.Tensor2D;
  }

  /** Frees the exported graphs; the sessions stay in the process's cache for the next engine on the same model. */
  dispose(): void {
    this.#disposed = true;
    if (this.#model instanceof LayersModelGraphs) this.#model.clear();
  }

  // ------------------------------------------------------------ graphs and sessions

  /** Whether a final softmax stays in the graph: only where asked for and the model has one, so a model without one shares its graphs. */
  #keepsSoftmax(options: ScoreOptions): boolean {
    if (options.beforeSoftmax !== false) return false;
    this.#finalSoftmax ??= this.#model.finalSoftmax();
    return this.#finalSoftmax;
  }

  async #compiled(graphKey: string, build: () => { graph: Graph; inputs: string[]; outputs: string[] }): Promise<Compiled> {
    if (this.#disposed) throw new Error('ONNX engine used after dispose');
    const key = `${this.#model.fingerprint()}|${this.#options.device}|${this.#options.threads}|${graphKey}`;
    const found = sessions.get(key);
    if (found) {
      sessions.delete(key);
      sessions.set(key, found);
      return found;
    }
    const pending = (async () => {
      const { graph, inputs, outputs } = build();
      const session = await OnnxSession.fromGraph(graph, { device: this.#options.device, threads: this.#options.threads });
      return { session, inputs, outputs };
    })();
    sessions.set(key, pending);
    pending.catch(() => sessions.delete(key));
    while (sessions.size > MAX_SESSIONS) {
      const [oldest, evicted] = sessions.entries().next().value as [string, Promise<Compiled>];
      sessions.delete(oldest);
      void evicted.then((compiled) => compiled.session.release(), () => {});
    }
    return pending;
  }

  async #run(compiled: Compiled, feeds: HostTensor[]): Promise<HostTensor[]> {
    const inputs = Object.fromEntries(compiled.inputs.map((name, i) => [name, feeds[i]]));
    return compiled.session.run(inputs, compiled.outputs);
  }

  /** Runs x in chunks of padded rows; `extra` gives each chunk's second input (the target mask). Returns each output joined over the chunks. */
  async #rowwise(
    x: tf.Tensor4D | HostImages,
    compile: (rows: number) => Promise<Compiled>,
    extra?: (start: number, count: number, rows: number) => Float32Array,
    extraWidth = 0,
  ): Promise<tf.Tensor[]> {
    const [n, h, w] = x.shape;
    const data = isHostImages(x) ? x.data : hostOf(x);
    const rowSize = data.length / n;
    const cap = Math.max(1, Math.floor(MAX_PIXELS_PER_CALL / (h * w)));
    const chunks: HostTensor[][] = [];
    const counts: number[] = [];
    for (let start = 0; start < n; start += cap) {
      const count = Math.min(cap, n - start);
      const rows = Math.min(nextPowerOfTwo(count), nextPowerOfTwo(cap));
      const compiled = await compile(rows);
      const feeds: HostTensor[] = [{ data: paddedRows(data, rowSize, start, count, rows), shape: [rows, ...x.shape.slice(1)] }];
      if (extra) feeds.push({ data: extra(start, count, rows), shape: [rows, extraWidth] });
      chunks.push(await this.#run(compiled, feeds));
      counts.push(count);
    }
    return chunks[0].map((_, k) => joinRows(chunks.map((outputs) => outputs[k]), counts));
  }

  /**
   * DeepLift's batches hold the inputs, then their references: chunks keep
   * each input beside its own reference, padding both halves alike.
   */
  async #pairwise(x: tf.Tensor4D, targets: readonly number[], classes: number, compile: (rows: number) => Promise<Compiled>): Promise<tf.Tensor[]> {
    const [n, h, w] = x.shape;
    if (n % 2 !== 0) throw new Error(`the deeplift rule needs inputs then references (an even batch), not ${n} rows`);
    const half = n / 2;
    const rowSize = x.size / n;
    const data = hostOf(x);
    const cap = Math.max(1, Math.floor(MAX_PIXELS_PER_CALL / (2 * h * w)));
    const halves: { start: number; count: number; out: HostTensor }[] = [];
    for (let start = 0; start < half; start += cap) {
      const count = Math.min(cap, half - start);
      const rows = Math.min(nextPowerOfTwo(count), nextPowerOfTwo(cap));
      const compiled = await compile(2 * rows);
      const batch = new Float32Array(2 * rows * rowSize);
      batch.set(data.subarray(start * rowSize, (start + count) * rowSize));
      batch.set(data.subarray((half + start) * rowSize, (half + start + count) * rowSize), rows * rowSize);
      const mask = new Float32Array(2 * rows * classes);
      for (let i = 0; i < count; i++) {
        mask[i * classes + targets[start + i]] = 1;
        mask[(rows + i) * classes + targets[half + start + i]] = 1;
      }
      const [gradient] = await this.#run(compiled, [{ data: batch, shape: [2 * rows, ...x.shape.slice(1)] }, { data: mask, shape: [2 * rows, classes] }]);
      halves.push({ start, count, out: { data: gradient.data, shape: [rows, ...gradient.shape.slice(1)] } });
      // The second half of the chunk's rows belongs to the references.
      halves.push({ start: half + start, count, out: { data: gradient.data.subarray(rows * rowSize), shape: [rows, ...gradient.shape.slice(1)] } });
    }
    const out = new Float32Array(n * rowSize);
    for (const part of halves) out.set(part.out.data.subarray(0, part.count * rowSize), part.start * rowSize);
    return [tf.tensor(out, [...x.shape], 'float32')];
  }
}
