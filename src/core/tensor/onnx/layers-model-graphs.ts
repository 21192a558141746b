/**
 * A tfjs layers-model as the ONNX engine runs it (engine-graphs.ts): its
 * graphs exported by onnx/export.ts, layers named as the tfjs engine names
 * them (`outer/inner` paths included).
 */
import { createHash } from 'node:crypto';
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../../errors.ts';
import { nearestNames } from '../../manifest/suggest.ts';
import { activationName, isSoftmaxLayer } from '../constant-weight-layers.ts';
import { compileLayerGraph, dependsOn, producerIndex } from '../layer-graph.ts';
import type { EngineGraphs, ForwardGraph } from './engine-graphs.ts';
import { exportLayersModel, type ExportedGraph } from './export.ts';

/** What identifies a model's graphs: its topology and every weight's name, shape and values. */
function modelFingerprint(model: tf.LayersModel): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(model.toJSON(undefined, false)));
  for (const weight of model.weights) {
    const values = weight.read().dataSync() as Float32Array;
    hash.update(`${weight.name}:${weight.shape.join('x')}:${weight.dtype};`);
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }
  return hash.digest('hex');
}

export class LayersModelGraphs implements EngineGraphs {
  readonly name: string;
  readonly #exports = new Map<string, ExportedGraph>();
  #fingerprint: string | undefined;
  #finalSoftmax: boolean | undefined;

  constructor(readonly model: tf.LayersModel) {
    this.name = model.name;
  }

  fingerprint(): string {
    return (this.#fingerprint ??= modelFingerprint(this.model));
  }

  classes(): number {
    const shape = this.model.outputs[0].shape;
    return shape.slice(1).reduce((a: number, b) => a * (b ?? 1), 1);
  }

  finalSoftmax(): boolean {
    if (this.#finalSoftmax === undefined) {
      const graph = compileLayerGraph(this.model);
      const producer = producerIndex(graph, graph.outputs[0]);
      const layer = producer < 0 ? undefined : graph.steps[producer].layer;
      this.#finalSoftmax = layer !== undefined && (isSoftmaxLayer(layer) || activationName(layer) === 'softmax');
    }
    return this.#finalSoftmax;
  }

  forward(rows: number, softmax: boolean): ExportedGraph {
    const key = `${rows}|${softmax}`;
    let exported = this.#exports.get(key);
    if (!exported) {
      exported = exportLayersModel(this.model, { batch: rows, leaveOutSoftmax: !softmax });
      this.#exports.set(key, exported);
    }
    return exported;
  }

  value(forward: ForwardGraph, layer: string): string {
    const exported = forward as ExportedGraph;
    const value = exported.layerValues.get(layer);
    if (value !== undefined) return value;
    const calls = exported.layerGraph.named.get(layer);
    if (calls !== undefined && calls.length > 1) {
      throw new UserError(`"${layer}" names ${calls.length} layer calls in model ${this.name} (a shared layer, or one name in several nested models), so its activations are ambiguous; give a nested layer as model/layer, or pick a layer called once.`);
    }
    const names = [...exported.layerGraph.named.keys()].sort((a, b) => a.localeCompare(b));
    throw new UserError(`Model ${this.name} has no layer named "${layer}"; nearest: ${nearestNames(layer, names).join(', ')}.`);
  }

  reachesScore(forward: ForwardGraph, layer: string): boolean {
    const { layerGraph } = forward as ExportedGraph;
    const calls = layerGraph.named.get(layer);
    if (!calls || calls.length !== 1 || calls[0].length !== 1) return true;
    return dependsOn(layerGraph, layerGraph.outputs[0], calls[0][0]);
  }

  /** Frees the exported graphs. */
  clear(): void {
    this.#exports.clear();
  }
}
