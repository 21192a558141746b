/**
 * The engine for a model, as the process's engine choice (engine-choice.ts)
 * says: the one place where a LoadedModel's `engine` is made. Neither engine
 * does work here: the onnx engine exports graphs and starts sessions when it
 * is first asked for something.
 */
import type * as tf from '@tensorflow/tfjs';
import type { ModelEngine } from './engine.ts';
import { engineChoice } from './engine-choice.ts';
import { OnnxEngine } from './onnx-engine.ts';
import { TfjsEngine } from './tfjs-engine.ts';

export function createEngine(model: tf.LayersModel): ModelEngine {
  const choice = engineChoice();
  switch (choice.engine) {
    case 'tfjs':
      return new TfjsEngine(model);
    case 'onnx':
      return new OnnxEngine(model, { device: choice.device, threads: choice.threads });
  }
}
