/**
 * The TensorFlow.js engine: `ModelEngine` over the model's own tfjs layers on
 * the current tfjs backend, through the constant-weight forward and backward
 * passes of gradients.ts (plain gradients, forward from a layer) and
 * modified-backprop.ts (guided backprop, DeepLift's rescale rule). It holds
 * nothing of its own: the layers-model belongs to the LoadedModel.
 */
import * as tf from '@tensorflow/tfjs';
import { isHostImages, type EngineInfo, type GradientRequest, type Gradients, type HostImages, type ModelEngine, type ScoreOptions } from './engine.ts';
import { classScores, forwardFromLayer, inputGradient, layerGradients, layerOutputs } from './gradients.ts';
import { deepLiftRules, guidedBackpropRules, modifiedInputGradient } from './modified-backprop.ts';

export class TfjsEngine implements ModelEngine {
  readonly #model: tf.LayersModel;
  readonly #functional: ReadonlySet<string>;

  /** `functionalLayers`: layers the modified backward rules leave plain (createEngine's EngineModelOptions). */
  constructor(model: tf.LayersModel, functionalLayers: readonly string[] = []) {
    this.#model = model;
    this.#functional = new Set(functionalLayers);
  }

  /** Read when asked: the tfjs backend may change after the engine is made. */
  get info(): EngineInfo {
    return { engine: 'tfjs', device: tf.getBackend() };
  }

  async scores(x: tf.Tensor4D | HostImages, options: ScoreOptions = {}): Promise<tf.Tensor2D> {
    if (!isHostImages(x)) return classScores(this.#model, x, options) as tf.Tensor2D;
    const images = tf.tensor4d(x.data, [...x.shape]);
    try {
      return classScores(this.#model, images, options) as tf.Tensor2D;
    } finally {
      images.dispose();
    }
  }

  async layerOutputs(x: tf.Tensor4D, layers: readonly string[]): Promise<tf.Tensor[]> {
    return layerOutputs(this.#model, x, layers);
  }

  async gradients(x: tf.Tensor4D, targets: readonly number[], request: GradientRequest): Promise<Gradients> {
    const rule = request.rule ?? 'plain';
    const layers = request.layers ?? [];
    if (rule !== 'plain') {
      if (layers.length > 0 || !request.input) throw new Error(`the ${rule} backward rule gives the input gradient alone; ask for it (input: true) and for no layers`);
      // The modified rules always score the logits.
      if (request.beforeSoftmax === false) throw new Error(`the ${rule} backward rule scores the logits; beforeSoftmax: false is not supported with it`);
      const rules = rule === 'guided' ? guidedBackpropRules(this.#functional) : deepLiftRules(this.#functional);
      return { layers: [], input: modifiedInputGradient(this.#model, x, targets, rules) as tf.Tensor4D };
    }
    const options = { beforeSoftmax: request.beforeSoftmax };
    if (layers.length === 0) {
      if (!request.input) throw new Error('gradients: ask for layers, the input gradient, or both');
      return { layers: [], input: inputGradient(this.#model, x, targets, options) as tf.Tensor4D };
    }
    const result = layerGradients(this.#model, x, layers, targets, { ...options, inputGradient: request.input === true });
    return { layers: result.layers, input: result.input as tf.Tensor4D | undefined };
  }

  async forwardFromLayer(layer: string, activations: tf.Tensor, options: ScoreOptions & { readonly input?: tf.Tensor4D } = {}): Promise<tf.Tensor2D> {
    return forwardFromLayer(this.#model, layer, activations, options) as tf.Tensor2D;
  }

  dispose(): void {}
}
