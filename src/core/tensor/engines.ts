/**
 * The engine for a model, as the process's engine choice (engine-choice.ts)
 * says: the one place where a LoadedModel's `engine` is made. Neither engine
 * does work here: the onnx engine exports graphs and starts sessions when it
 * is first asked for something. A graph imported from an ONNX file has no
 * tfjs counterpart, so it runs on the onnx engine only.
 */
import type * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import type { ModelEngine } from './engine.ts';
import { engineChoice } from './engine-choice.ts';
import type { EngineGraphs } from './onnx/engine-graphs.ts';
import { OnnxEngine } from './onnx-engine.ts';
import { TfjsEngine } from './tfjs-engine.ts';

const isEngineGraphs = (model: tf.LayersModel | EngineGraphs): model is EngineGraphs => typeof (model as EngineGraphs).fingerprint === 'function';

/** What a model's architecture says of it beyond its graph. */
export interface EngineModelOptions {
  /**
   * Layers (by tfjs name) that the torch original applies functionally, such
   * as F.relu: guided backprop and DeepLift leave them plain there, as
   * Captum's module hooks do not reach them.
   */
  readonly functionalLayers?: readonly string[];
}

export function createEngine(model: tf.LayersModel | EngineGraphs, options: EngineModelOptions = {}): ModelEngine {
  const choice = engineChoice();
  const functionalLayers = options.functionalLayers ?? [];
  if (isEngineGraphs(model)) {
    if (choice.engine !== 'onnx') {
      throw new UserError(`${model.name} is an ONNX graph, which only the onnx engine runs; choose an onnx backend (--backend onnx:cpu, or execution.backend: onnx:cpu in the manifest).`);
    }
    return new OnnxEngine(model, { device: choice.device, threads: choice.threads, functionalLayers });
  }
  switch (choice.engine) {
    case 'tfjs':
      return new TfjsEngine(model, functionalLayers);
    case 'onnx':
      return new OnnxEngine(model, { device: choice.device, threads: choice.threads, functionalLayers });
  }
}
