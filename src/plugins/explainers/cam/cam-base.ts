/**
 * What every CAM method shares, as pytorch-grad-cam 1.5.5 does it: the
 * target layers (`layer`: auto, a module, or a list whose maps are averaged),
 * their activations and gradients, the post-processing (ReLU, min-max per
 * image, bilinear resize with half-pixel centres, and for several layers the
 * mean and a second min-max), eigen smoothing (projection on the first
 * principal component) and augmentation smoothing (flips × brightness). A
 * method file says only how it weights the activations.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../../core/errors.ts';
import type { CamLayers, Json, JsonSchema, LoadedModel, Params } from '../../../core/plugins/types.ts';
import { defineTensorExplainer, predictedClasses, type ExplainBatch, type TensorExplainer } from '../../../core/tensor/tensor-explainer.ts';

/** The resolved params every CAM reads. */
export interface CamOptions {
  /** `auto`, a module, or several modules whose maps are averaged. */
  layer: string | string[];
  eigenSmooth: boolean;
  augSmooth: boolean;
  /** Orient each principal component so that its projection's largest-magnitude value is positive. */
  signFix: boolean;
  /** Masked or ablated inputs per forward pass (ScoreCAM, AblationCAM). */
  batchSize: number;
  /** The `target` param, to re-resolve `predicted` on augmented inputs. */
  target: Json;
}

/** One target layer of one batch, as a method sees it. Tensors belong to the caller. */
export interface CamLayerContext {
  model: LoadedModel;
  /** The network's input, [n, H, W, c]. */
  input: tf.Tensor4D;
  targets: number[];
  layer: CamLayers;
  /** The layer's activations, [n, h, w, c]. */
  activations: tf.Tensor4D;
  /** ∂score/∂(the module's output), [n, h, w, c]; only for methods that use gradients. */
  gradients?: tf.Tensor4D;
  options: CamOptions;
  warn(message: string): void;
}

export interface CamMethodSpec {
  id: string;
  version: string;
  description: string;
  /** Whether the method reads gradients at the target layers (else one forward pass to them). */
  usesGradients: boolean;
  /** EigenCAM and EigenGradCAM: the map is always the projection on the first principal component. */
  alwaysProjects?: boolean;
  /** Params of the method besides the common ones (`batchSize`…). */
  params?: Record<string, JsonSchema>;
  /**
   * The activations weighted per channel or per element, [n, h, w, c]: summed
   * over channels — or projected on their first principal component with
   * eigen smoothing — they are the layer's CAM.
   */
  weighted(context: CamLayerContext): tf.Tensor4D | Promise<tf.Tensor4D>;
}

export interface CamExplainer extends TensorExplainer<Params> {
  /** The per-layer maps at each layer's resolution after the ReLU, before any scaling, [n, h, w] each (the caller disposes them). */
  rawMaps(model: LoadedModel, input: tf.Tensor4D, targets: number[], params: Params, warn?: (message: string) => void): Promise<tf.Tensor3D[]>;
}

// ---------------------------------------------------------------- params

export const LAYER_PARAM: JsonSchema = {
  anyOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1 }],
  default: 'auto',
  description: 'Target layer: auto (the architecture’s default), a torch module path (layer4, features.18…), or a list of them whose maps are averaged.',
};

export const SMOOTHING_PARAMS: Record<string, JsonSchema> = {
  eigenSmooth: { type: 'boolean', default: false, description: 'Project the weighted activations on their first principal component instead of summing the channels.' },
  augSmooth: { type: 'boolean', default: false, description: 'Average the maps of the image flipped horizontally or not × brightness 0.9, 1, 1.1 (with target predicted, each variant explains its own argmax, as the reference does).' },
  signFix: {
    type: 'boolean',
    default: true,
    description: 'With a principal component (eigen methods, eigenSmooth): orient it so that the projection’s largest-magnitude value is positive; false keeps the sign the decomposition gives (arbitrary, as the reference’s).',
  },
};

export const batchSizeParam = (fallback: number, what: string): JsonSchema => ({
  type: 'integer',
  minimum: 1,
  default: fallback,
  description: `${what} per forward pass (default ${fallback}, the reference's); only speed and memory depend on it.`,
});

export function camOptions(params: Params, batchSize = 16): CamOptions {
  const layer = params.layer ?? 'auto';
  if (!(typeof layer === 'string' || (Array.isArray(layer) && layer.length > 0 && layer.every((l) => typeof l === 'string')))) {
    throw new UserError(`layer must be auto, a module name or a list of module names; got ${JSON.stringify(layer)}.`);
  }
  return {
    layer: layer as string | string[],
    eigenSmooth: params.eigenSmooth === true,
    augSmooth: params.augSmooth === true,
    signFix: params.signFix !== false,
    batchSize: typeof params.batchSize === 'number' ? Math.max(1, Math.floor(params.batchSize)) : batchSize,
    target: params.target ?? 'predicted',
  };
}

/** The CamLayers of the `layer` param. */
export function camLayersOf(model: LoadedModel, layer: string | string[]): CamLayers[] {
  const names = Array.isArray(layer) ? layer : [layer];
  return names.map((name) => {
    if (name !== 'auto') return model.camLayers(name);
    if (!model.target.activation) throw new UserError('The model declares no default CAM layer (it has no convolution); give layer: a layer name.');
    return model.target;
  });
}

// ---------------------------------------------------------------- post-processing

/** pytorch-grad-cam's scale_cam_image: per image x − min, divided by (max + 1e-7), then resized (cv2 bilinear = half-pixel centres). */
export function scaleCam(cams: tf.Tensor3D, size?: [number, number]): tf.Tensor3D {
  return tf.tidy(() => {
    const shifted = tf.sub(cams, tf.min(cams, [1, 2], true));
    const scaled = tf.div(shifted, tf.add(tf.max(shifted, [1, 2], true), 1e-7)) as tf.Tensor3D;
    if (!size || (size[0] === cams.shape[1] && size[1] === cams.shape[2])) return scaled;
    return tf.squeeze(tf.image.resizeBilinear(tf.expandDims(scaled, 3) as tf.Tensor4D, size, false, true), [3]) as tf.Tensor3D;
  });
}

/** scale_accross_batch_and_channels: every channel of every image min-max scaled and resized, [n, h, w, c] → [n, H, W, c]. */
export function scaleChannels(maps: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  return tf.tidy(() => {
    const shifted = tf.sub(maps, tf.min(maps, [1, 2], true));
    const scaled = tf.div(shifted, tf.add(tf.max(shifted, [1, 2], true), 1e-7)) as tf.Tensor4D;
    if (size[0] === maps.shape[1] && size[1] === maps.shape[2]) return scaled;
    return tf.image.resizeBilinear(scaled, size, false, true);
  });
}

/** aggregate_multi_layers: the layers' scaled maps, ReLU, averaged, scaled again. */
export function aggregateLayers(scaled: tf.Tensor3D[]): tf.Tensor3D {
  return tf.tidy(() => scaleCam(tf.mean(tf.relu(tf.stack(scaled)), 0) as tf.Tensor3D));
}

/** The activations scaled per image and channel by weights [n, c]. */
export function channelWeighted(activations: tf.Tensor4D, weights: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => tf.mul(activations, tf.reshape(weights, [weights.shape[0], 1, 1, weights.shape[1]])));
}

/** Column `target` of each row of logits [m, classes]. */
export function scoresOf(logits: tf.Tensor, target: number): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.slice(logits, [0, target], [-1, 1]), [-1]));
}

// ---------------------------------------------------------------- principal component

/**
 * Eigenvalues and eigenvectors of a symmetric matrix (row-major n×n, float64):
 * Householder reduction to tridiagonal form, then the implicit QL algorithm
 * (EISPACK tred2/tql2). Eigenvector j is column j of `vectors`.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const V = Float64Array.from(matrix);
  const d = new Float64Array(n);
  const e = new Float64Array(n);
  const at = (i: number, j: number) => i * n + j;
  for (let j = 0; j < n; j++) d[j] = V[at(n - 1, j)];
  for (let i = n - 1; i > 0; i--) {
    let scale = 0;
    let h = 0;
    for (let k = 0; k < i; k++) scale += Math.abs(d[k]);
    if (scale === 0) {
      e[i] = d[i - 1];
      for (let j = 0; j < i; j++) {
        d[j] = V[at(i - 1, j)];
        V[at(i, j)] = 0;
        V[at(j, i)] = 0;
      }
    } else {
      for (let k = 0; k < i; k++) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      let f = d[i - 1];
      let g = Math.sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (let j = 0; j < i; j++) e[j] = 0;
      for (let j = 0; j < i; j++) {
        f = d[j];
        V[at(j, i)] = f;
        g = e[j] + V[at(j, j)] * f;
        for (let k = j + 1; k <= i - 1; k++) {
          g += V[at(k, j)] * d[k];
          e[k] += V[at(k, j)] * f;
        }
        e[j] = g;
      }
      f = 0;
      for (let j = 0; j < i; j++) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const hh = f / (h + h);
      for (let j = 0; j < i; j++) e[j] -= hh * d[j];
      for (let j = 0; j < i; j++) {
        f = d[j];
        g = e[j];
        for (let k = j; k <= i - 1; k++) V[at(k, j)] -= f * e[k] + g * d[k];
        d[j] = V[at(i - 1, j)];
        V[at(i, j)] = 0;
      }
    }
    d[i] = h;
  }
  for (let i = 0; i < n - 1; i++) {
    V[at(n - 1, i)] = V[at(i, i)];
    V[at(i, i)] = 1;
    const h = d[i + 1];
    if (h !== 0) {
      for (let k = 0; k <= i; k++) d[k] = V[at(k, i + 1)] / h;
      for (let j = 0; j <= i; j++) {
        let g = 0;
        for (let k = 0; k <= i; k++) g += V[at(k, i + 1)] * V[at(k, j)];
        for (let k = 0; k <= i; k++) V[at(k, j)] -= g * d[k];
      }
    }
    for (let k = 0; k <= i; k++) V[at(k, i + 1)] = 0;
  }
  for (let j = 0; j < n; j++) {
    d[j] = V[at(n - 1, j)];
    V[at(n - 1, j)] = 0;
  }
  V[at(n - 1, n - 1)] = 1;
  e[0] = 0;

  for (let i = 1; i < n; i++) e[i - 1] = e[i];
  e[n - 1] = 0;
  let f = 0;
  let tst1 = 0;
  const eps = 2 ** -52;
  for (let l = 0; l < n; l++) {
    tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
    let m = l;
    while (m < n - 1 && Math.abs(e[m]) > eps * tst1) m++;
    if (m > l) {
      for (let iteration = 0; ; iteration++) {
        if (iteration > 100 * n) throw new Error('symmetricEigen: no convergence');
        let g = d[l];
        let p = (d[l + 1] - g) / (2 * e[l]);
        let r = Math.hypot(p, 1);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const dl1 = d[l + 1];
        let h = g - d[l];
        for (let i = l + 2; i < n; i++) d[i] -= h;
        f += h;
        p = d[m];
        let c = 1;
        let c2 = c;
        let c3 = c;
        const el1 = e[l + 1];
        let s = 0;
        let s2 = 0;
        for (let i = m - 1; i >= l; i--) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = Math.hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (let k = 0; k < n; k++) {
            h = V[at(k, i + 1)];
            V[at(k, i + 1)] = s * V[at(k, i)] + c * h;
            V[at(k, i)] = c * V[at(k, i)] - s * h;
          }
        }
        p = (-s * s2 * c3 * el1 * e[l]) / dl1;
        e[l] = s * p;
        d[l] = c * p;
        if (!(Math.abs(e[l]) > eps * tst1)) break;
      }
    }
    d[l] += f;
    e[l] = 0;
  }
  return { values: d, vectors: V };
}

/** The unit eigenvector of the largest eigenvalue of each symmetric matrix in `grams` [n, k, k]. */
function topEigenvectors(grams: Float32Array, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  for (let image = 0; image < n; image++) {
    const { values, vectors } = symmetricEigen(Float64Array.from(grams.subarray(image * k * k, (image + 1) * k * k)), k);
    let best = 0;
    for (let j = 1; j < k; j++) if (values[j] > values[best]) best = j;
    for (let i = 0; i < k; i++) out[image * k + i] = vectors[i * k + best];
  }
  return out;
}

/**
 * get_2d_projection: per image, the [h·w, c] activations centred over the
 * pixels and projected on their first principal direction (the first right
 * singular vector), [n, h, w, c] → [n, h, w]. The decomposition runs on the
 * smaller Gram matrix. The reference keeps whatever sign LAPACK returns;
 * `signFix` makes each projection's largest-magnitude value positive.
 */
export function principalProjection(weighted: tf.Tensor4D, signFix: boolean): tf.Tensor3D {
  const [n, h, w, c] = weighted.shape;
  const pixels = h * w;
  const centred = tf.tidy(() => {
    const flat = tf.reshape(weighted, [n, pixels, c]);
    const clean = tf.where(tf.isNaN(flat), tf.zerosLike(flat), flat);
    return tf.sub(clean, tf.mean(clean, 1, true)) as tf.Tensor3D;
  });
  try {
    const channelSide = c <= pixels;
    const k = channelSide ? c : pixels;
    const gram = tf.tidy(() => (channelSide ? tf.matMul(centred, centred, true, false) : tf.matMul(centred, centred, false, true)));
    const grams = gram.dataSync() as Float32Array;
    gram.dispose();
    const top = topEigenvectors(grams, n, k);
    return tf.tidy(() => {
      const vectors = tf.tensor3d(top, [n, k, 1]);
      let direction = vectors;
      if (!channelSide) {
        // The right singular vector from the left one: Aᵀu, normalised.
        const right = tf.matMul(centred, vectors, true, false);
        direction = tf.div(right, tf.maximum(tf.norm(right, 'euclidean', 1, true), 1e-30));
      }
      const projection = tf.reshape(tf.matMul(centred, direction), [n, pixels]);
      const positiveWins = tf.greaterEqual(tf.max(projection, 1, true), tf.neg(tf.min(projection, 1, true)));
      const oriented = signFix ? tf.mul(projection, tf.where(positiveWins, tf.ones([n, 1]), tf.fill([n, 1], -1))) : projection;
      return tf.reshape(oriented, [n, h, w]) as tf.Tensor3D;
    });
  } finally {
    centred.dispose();
  }
}

// ---------------------------------------------------------------- explainers

/** The shapes a CAM can use: [n, h, w, c]. */
function asMaps(tensor: tf.Tensor, layer: string, model: LoadedModel): tf.Tensor4D {
  if (tensor.rank !== 4) {
    throw new UserError(`Layer ${layer} of model ${model.name} gives [${tensor.shape.join(', ')}]; a CAM needs a convolutional layer's [n, h, w, c] output.`);
  }
  return tensor as tf.Tensor4D;
}

/** Each target layer's activations, and gradients where the method uses them, from one forward (and backward) pass. */
async function layerInputs(spec: CamMethodSpec, model: LoadedModel, input: tf.Tensor4D, targets: number[], layers: CamLayers[]): Promise<{ activations: tf.Tensor4D[]; gradients?: tf.Tensor4D[] }> {
  const activationNames = layers.map((layer) => layer.activation);
  if (!spec.usesGradients) {
    const unique = [...new Set(activationNames)];
    const outputs = await model.engine.layerOutputs(input, unique);
    try {
      return { activations: activationNames.map((name) => tf.clone(asMaps(outputs[unique.indexOf(name)], name, model))) };
    } finally {
      tf.dispose(outputs);
    }
  }
  const unique = [...new Set([...layers.map((layer) => layer.gradient), ...activationNames])];
  const result = await model.engine.gradients(input, targets, { layers: unique });
  try {
    const activations = activationNames.map((name) => tf.clone(asMaps(result.layers[unique.indexOf(name)].activations, name, model)));
    const gradients = layers.map((layer) => tf.clone(asMaps(result.layers[unique.indexOf(layer.gradient)].gradients, layer.gradient, model)));
    gradients.forEach((g, i) => {
      if (g.shape.join() !== activations[i].shape.join()) {
        throw new Error(`CAM layers of ${layers[i].module}: gradients [${g.shape.join(', ')}] and activations [${activations[i].shape.join(', ')}] differ in shape`);
      }
    });
    return { activations, gradients };
  } finally {
    tf.dispose([...result.layers.flatMap((layer) => [layer.activations, layer.gradients]), ...(result.input ? [result.input] : [])]);
  }
}

/** The map of each target layer at its own resolution, after the ReLU (compute_cam_per_layer before scale_cam_image). */
export async function layerCams(spec: CamMethodSpec, model: LoadedModel, input: tf.Tensor4D, targets: number[], options: CamOptions, warn: (message: string) => void): Promise<tf.Tensor3D[]> {
  const layers = camLayersOf(model, options.layer);
  const { activations, gradients } = await layerInputs(spec, model, input, targets, layers);
  const cams: tf.Tensor3D[] = [];
  try {
    for (const [i, layer] of layers.entries()) {
      const weighted = await spec.weighted({ model, input, targets, layer, activations: activations[i], gradients: gradients?.[i], options, warn });
      try {
        const cam = spec.alwaysProjects || options.eigenSmooth ? principalProjection(weighted, options.signFix) : tf.tidy(() => tf.sum(weighted, 3) as tf.Tensor3D);
        cams.push(tf.tidy(() => tf.relu(cam)));
        cam.dispose();
      } finally {
        weighted.dispose();
      }
    }
    return cams;
  } catch (error) {
    tf.dispose(cams);
    throw error;
  } finally {
    tf.dispose([...activations, ...(gradients ?? [])]);
  }
}

/**
 * forward_augmentation_smoothing: the maps of the input flipped horizontally
 * or not × brightness 0.9, 1, 1.1, flipped back and averaged. With `target:
 * predicted` each variant explains its own argmax, as the reference does.
 */
async function augmentationSmoothed(maps: (input: tf.Tensor4D, targets: number[]) => Promise<tf.Tensor3D>, batch: ExplainBatch, options: CamOptions): Promise<tf.Tensor3D> {
  let sum: tf.Tensor3D | undefined;
  let count = 0;
  for (const flip of [false, true]) {
    for (const factor of [0.9, 1, 1.1]) {
      const augmented = tf.tidy(() => tf.mul(flip ? tf.reverse(batch.input, 2) : batch.input, factor) as tf.Tensor4D);
      try {
        const targets = options.target === 'predicted' ? await predictedClasses(batch.model.engine, augmented) : batch.targets;
        const map = await maps(augmented, targets);
        const next = tf.tidy(() => (sum ? tf.add(sum, flip ? tf.reverse(map, 2) : map) : flip ? tf.reverse(map, 2) : tf.clone(map)) as tf.Tensor3D);
        map.dispose();
        sum?.dispose();
        sum = next;
        count++;
      } finally {
        augmented.dispose();
      }
    }
  }
  const mean = tf.tidy(() => tf.div(sum as tf.Tensor3D, count) as tf.Tensor3D);
  sum?.dispose();
  return mean;
}

export interface CamExplainerSpec {
  id: string;
  version: string;
  description: string;
  params: Record<string, JsonSchema>;
  /** Default of `batchSize` where the method has one. */
  batchSize?: number;
  /** Final maps [n, H, W] for one (possibly augmented) input. */
  maps(model: LoadedModel, input: tf.Tensor4D, targets: number[], options: CamOptions, warn: (message: string) => void): Promise<tf.Tensor3D>;
}

/** A CAM explainer from its final-map function, with augmentation smoothing around it. */
export function defineCamExplainer(spec: CamExplainerSpec): TensorExplainer<Params> {
  return defineTensorExplainer<Params>({
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: { properties: spec.params },
    explain: async (batch, params) => {
      const options = camOptions(params, spec.batchSize);
      const maps = (input: tf.Tensor4D, targets: number[]) => spec.maps(batch.model, input, targets, options, batch.warn);
      return { maps: options.augSmooth ? await augmentationSmoothed(maps, batch, options) : await maps(batch.input, batch.targets) };
    },
  });
}

/** A CAM explainer from a method that weights a layer's activations. */
export function defineCam(spec: CamMethodSpec): CamExplainer {
  const defaultBatch = typeof spec.params?.batchSize?.default === 'number' ? (spec.params.batchSize.default as number) : undefined;
  const explainer = defineCamExplainer({
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: { layer: LAYER_PARAM, ...SMOOTHING_PARAMS, ...(spec.params ?? {}) },
    batchSize: defaultBatch,
    maps: async (model, input, targets, options, warn) => {
      const cams = await layerCams(spec, model, input, targets, options, warn);
      const size: [number, number] = [input.shape[1], input.shape[2]];
      try {
        return tf.tidy(() => aggregateLayers(cams.map((cam) => scaleCam(cam, size))));
      } finally {
        tf.dispose(cams);
      }
    },
  });
  return {
    ...explainer,
    rawMaps: (model, input, targets, params, warn = () => {}) => layerCams(spec, model, input, targets, camOptions(params, defaultBatch), warn),
  };
}
