/**
 * The engine for a model, as the process's engine choice (engine-choice.ts)
 * says: the one place where a LoadedModel's `engine` is made.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ModelEngine } from './engine.ts';
import { engineChoice } from './engine-choice.ts';
import { TfjsEngine } from './tfjs-engine.ts';

export function createEngine(model: tf.LayersModel): ModelEngine {
  const choice = engineChoice();
  switch (choice.engine) {
    case 'tfjs':
      return new TfjsEngine(model);
    case 'onnx':
      throw new Error(`the onnx engine (onnx:${choice.device}) is not built into this salgrid yet; choose a tfjs backend`);
  }
}
