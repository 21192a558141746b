/**
 * The one interface through which explainers and perturbation metrics reach a
 * model, whichever engine runs it: TensorFlow.js (the portable reference) or
 * ONNX Runtime (the native engine). Layers are named as the model's
 * `LoadedModel.camLayers` resolves them (tfjs layer names; for the built-in
 * architectures these carry the torch module path, `features_18` for
 * `features.18`), so a layer means the same thing on both engines.
 *
 * Inputs and outputs are tfjs tensors in NHWC on the current tfjs backend;
 * per-image math (CAM weights, upsampling, masks) stays there. `scores` also
 * takes images made on the host (HostImages), which an engine outside tfjs
 * reads without their passing through a tfjs backend's memory. Every method
 * runs the network in inference mode (batch norm on its running statistics,
 * dropout off) with the weights held constant: no weight gradient is ever
 * computed. The score of image i is the output for class targets[i], the
 * logit unless `beforeSoftmax: false` (a final softmax is left out).
 *
 * Tensors returned belong to the caller.
 */
import type * as tf from '@tensorflow/tfjs';

export interface ScoreOptions {
  /** Score the logits, leaving out a final softmax (default true). */
  readonly beforeSoftmax?: boolean;
}

/**
 * How the backward pass runs: `plain` is the ordinary gradient; `guided` is
 * guided backprop (ReLUs pass back only positive gradients where their input
 * was positive; max pooling routes to the first maximum, as PyTorch);
 * `deeplift` is DeepLift's rescale rule as Captum 0.8 computes it, for a batch
 * that holds the inputs and then, in the same order, their references.
 */
export type BackwardRule = 'plain' | 'guided' | 'deeplift';

export interface LayerGradient {
  /** The layer's output for each image. */
  readonly activations: tf.Tensor;
  /** ∂score/∂activations, same shape. */
  readonly gradients: tf.Tensor;
}

export interface GradientRequest extends ScoreOptions {
  /** Layers whose activations and gradients to return, in this order. */
  readonly layers?: readonly string[];
  /** Also return ∂score/∂input. */
  readonly input?: boolean;
  /** Backward rule (default `plain`); `guided` and `deeplift` are for the input gradient alone. */
  readonly rule?: BackwardRule;
}

export interface Gradients {
  /** One per layer asked for, in that order. */
  readonly layers: LayerGradient[];
  /** ∂score/∂input [n, h, w, c], when asked for. */
  readonly input?: tf.Tensor4D;
}

export interface EngineInfo {
  /** `tfjs` or `onnx`. */
  readonly engine: 'tfjs' | 'onnx';
  /** What runs the kernels: the tfjs backend (`cpu`, `wasm`, `webgpu`, `tensorflow`) or the ONNX Runtime execution provider (`cpu`, `webgpu`, `cuda`). */
  readonly device: string;
  /** Intra-op threads, where the engine has such a setting. */
  readonly threads?: number;
}

/** Images as a host array, NHWC in C order. */
export interface HostImages {
  readonly data: Float32Array;
  readonly shape: readonly [number, number, number, number];
}

export function isHostImages(x: tf.Tensor4D | HostImages): x is HostImages {
  return x.constructor === Object && (x as HostImages).data instanceof Float32Array;
}

export interface ModelEngine {
  readonly info: EngineInfo;
  /** Class scores [n, classes]: logits unless `beforeSoftmax: false`. */
  scores(x: tf.Tensor4D | HostImages, options?: ScoreOptions): Promise<tf.Tensor2D>;
  /** The named layers' outputs; the forward stops at the last of them. */
  layerOutputs(x: tf.Tensor4D, layers: readonly string[]): Promise<tf.Tensor[]>;
  /** Activations and gradients at layers, and the input gradient, from one forward and one backward pass. */
  gradients(x: tf.Tensor4D, targets: readonly number[], request: GradientRequest): Promise<Gradients>;
  /**
   * Class scores when the named layer's output is replaced by `activations`
   * (AblationCAM). Where later layers also read values that bypass that layer
   * (a residual connection), they come from `input`: one image, repeated for
   * every row of `activations`, or one per row.
   */
  forwardFromLayer(layer: string, activations: tf.Tensor, options?: ScoreOptions & { readonly input?: tf.Tensor4D }): Promise<tf.Tensor2D>;
  /** Frees what the engine holds for this model (sessions, graphs); the tfjs model itself belongs to the LoadedModel. */
  dispose(): void;
}
