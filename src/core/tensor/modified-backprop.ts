/**
 * Input gradients under modified backward rules — guided backprop's ReLU,
 * DeepLift's rescale rule — and class scores without a tape. The forward is
 * the model's own layers in inference mode with constant weights (as in
 * gradients.ts: no weight gradient is ever computed); activations and max
 * pooling may be replaced by ops whose gradient is the method's rule.
 *
 * Max pooling's backward routes each window's gradient to the first maximum
 * in row-major order, as PyTorch's max_pool2d indices do (tfjs's own kernels
 * may pick another one among ties).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { activationName, callLayer, isSoftmaxLayer, type ActivationOverride } from './constant-weight-layers.ts';
import { compileLayerGraph, producerIndex, stepsNeededFor, type LayerGraph } from './layer-graph.ts';

/** A 2-D max pooling, NHWC. */
export interface PoolSpec {
  readonly size: [number, number];
  readonly strides: [number, number];
  readonly padding: 'valid' | 'same';
}

export interface BackwardRules {
  /** Element-wise activations to replace. */
  readonly activation?: ActivationOverride;
  /**
   * Layers (activations, max pooling) that keep their plain gradient: what
   * the torch original applies functionally (F.relu), where Captum's module
   * hooks do not reach.
   */
  readonly plainLayers?: ReadonlySet<string>;
  /** Stands in for every MaxPooling2D layer (NHWC input). */
  maxPool?(x: tf.Tensor4D, pool: PoolSpec): tf.Tensor4D;
}

interface Scored {
  graph: LayerGraph;
  key: string;
  /** The step whose softmax is left out, -1 for none. */
  unsoftmaxed: number;
  needed: boolean[];
}

function scored(model: tf.LayersModel): Scored {
  if (model.inputs.length !== 1) throw new UserError(`Model ${model.name} takes ${model.inputs.length} inputs; attributions are computed for single-input models only.`);
  const graph = compileLayerGraph(model);
  const key = graph.outputs[0];
  const producer = producerIndex(graph, key);
  let unsoftmaxed = -1;
  if (producer >= 0) {
    const layer = graph.steps[producer].layer;
    if (isSoftmaxLayer(layer) || activationName(layer) === 'softmax') unsoftmaxed = producer;
  }
  return { graph, key, unsoftmaxed, needed: stepsNeededFor(graph, key) };
}

function pair(value: unknown): [number, number] {
  return Array.isArray(value) ? [Number(value[0]), Number(value[1] ?? value[0])] : [Number(value), Number(value)];
}

function poolSpec(layer: tf.layers.Layer): PoolSpec | undefined {
  const fields = layer as unknown as { poolSize?: unknown; strides?: unknown; padding?: string; dataFormat?: string };
  if (fields.padding !== 'valid' && fields.padding !== 'same') return undefined;
  return { size: pair(fields.poolSize), strides: pair(fields.strides ?? fields.poolSize), padding: fields.padding };
}

/** Forward through the model's layers; `rules` (under a tape) replace activations and max pooling. Returns the logits. */
function forward(model: tf.LayersModel, s: Scored, x: tf.Tensor, rules: BackwardRules | undefined): tf.Tensor {
  const values = new Map<string, tf.Tensor>([[s.graph.inputs[0], x.dtype === 'float32' ? x : tf.cast(x, 'float32')]]);
  s.graph.steps.forEach((step, i) => {
    if (!s.needed[i]) return;
    const inputs = step.inputs.map((key) => values.get(key) as tf.Tensor);
    let outputs: tf.Tensor[] | undefined;
    const plain = rules?.plainLayers?.has(step.layer.name) === true;
    if (rules?.maxPool && !plain && step.layer.getClassName() === 'MaxPooling2D' && inputs.length === 1 && inputs[0].rank === 4) {
      const spec = poolSpec(step.layer);
      const channelsFirst = (step.layer as unknown as { dataFormat?: string }).dataFormat === 'channelsFirst';
      if (spec) {
        const input = (channelsFirst ? tf.transpose(inputs[0], [0, 2, 3, 1]) : inputs[0]) as tf.Tensor4D;
        const pooled = rules.maxPool(input, spec);
        outputs = [channelsFirst ? tf.transpose(pooled, [0, 3, 1, 2]) : pooled];
      }
    }
    outputs ??= callLayer(step, inputs, { constantWeights: rules !== undefined, withoutSoftmax: i === s.unsoftmaxed, activation: plain ? undefined : rules?.activation });
    step.outputs.forEach((key, j) => values.set(key, outputs![j]));
  });
  return values.get(s.key) as tf.Tensor;
}

function targetScores(output: tf.Tensor, targets: readonly number[]): tf.Tensor1D {
  const batch = output.shape[0];
  const flat = tf.reshape(output, [batch, -1]);
  const classes = flat.shape[1] as number;
  if (targets.length !== batch) throw new UserError(`${targets.length} target class(es) given for a batch of ${batch} image(s); give one per image.`);
  const bad = targets.find((t) => !Number.isInteger(t) || t < 0 || t >= classes);
  if (bad !== undefined) throw new UserError(`Target class ${bad} does not exist: the model scores ${classes} classes (0…${classes - 1}).`);
  // A float mask built here rather than tf.oneHot (tfjs-backend-wasm 4.22's float OneHot is wrong).
  const mask = new Float32Array(batch * classes);
  targets.forEach((t, i) => (mask[i * classes + t] = 1));
  return tf.sum(tf.mul(flat, tf.tensor2d(mask, [batch, classes])), 1);
}

/** Each image's score for its target class (the logit: a final softmax is left out), without a tape. */
export function classScoresFor(model: tf.LayersModel, x: tf.Tensor, targets: readonly number[]): tf.Tensor1D {
  const s = scored(model);
  return tf.tidy(() => targetScores(forward(model, s, x, undefined), targets));
}

/** ∂score/∂x with the backward rules given, where score is image i's logit for class targets[i]. */
export function modifiedInputGradient(model: tf.LayersModel, x: tf.Tensor, targets: readonly number[], rules: BackwardRules): tf.Tensor {
  const s = scored(model);
  return tf.tidy(() => tf.grad((input: tf.Tensor) => tf.sum(targetScores(forward(model, s, input, rules), targets)))(x.dtype === 'float32' ? x : tf.cast(x, 'float32')));
}

// ---------------------------------------------------------------- max pooling

interface Windows {
  /** x padded as the pooling pads it (-∞), and the padding. */
  padded: tf.Tensor4D;
  top: number;
  left: number;
  out: [number, number];
}

function windows(x: tf.Tensor4D, pool: PoolSpec): Windows {
  const [, h, w] = x.shape;
  const [kh, kw] = pool.size;
  const [sh, sw] = pool.strides;
  if (pool.padding === 'valid') return { padded: x, top: 0, left: 0, out: [Math.floor((h - kh) / sh) + 1, Math.floor((w - kw) / sw) + 1] };
  const out: [number, number] = [Math.ceil(h / sh), Math.ceil(w / sw)];
  const padH = Math.max((out[0] - 1) * sh + kh - h, 0);
  const padW = Math.max((out[1] - 1) * sw + kw - w, 0);
  const top = Math.floor(padH / 2);
  const left = Math.floor(padW / 2);
  const padded = tf.pad(x, [[0, 0], [top, padH - top], [left, padW - left], [0, 0]], -Infinity);
  return { padded, top, left, out };
}

/** Which window element each output takes, as one 0/1 mask per offset of the window (row-major), first maximum winning. */
function firstMaxMasks(x: tf.Tensor4D, pool: PoolSpec, win: Windows): tf.Tensor4D[] {
  const [n, , , c] = x.shape;
  const [oh, ow] = win.out;
  const [sh, sw] = pool.strides;
  const candidates: tf.Tensor4D[] = [];
  for (let di = 0; di < pool.size[0]; di++) {
    for (let dj = 0; dj < pool.size[1]; dj++) {
      candidates.push(tf.stridedSlice(win.padded, [0, di, dj, 0], [n, di + (oh - 1) * sh + 1, dj + (ow - 1) * sw + 1, c], [1, sh, sw, 1]) as tf.Tensor4D);
    }
  }
  const best = candidates.reduce((a, b) => tf.maximum(a, b));
  let taken: tf.Tensor | undefined;
  return candidates.map((candidate) => {
    const isMax = tf.equal(candidate, best);
    const chosen = taken === undefined ? isMax : tf.logicalAnd(isMax, tf.logicalNot(taken));
    taken = taken === undefined ? isMax : tf.logicalOr(taken, isMax);
    return tf.cast(chosen, 'float32') as tf.Tensor4D;
  });
}

/** Sends v (one value per window) to the chosen element of each window: the backward pass of max pooling. */
function route(v: tf.Tensor4D, x: tf.Tensor4D, pool: PoolSpec, win: Windows, masks: tf.Tensor4D[]): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [oh, ow] = win.out;
  const [sh, sw] = pool.strides;
  const [ph, pw] = [win.padded.shape[1], win.padded.shape[2]];
  let sum: tf.Tensor4D | undefined;
  masks.forEach((mask, k) => {
    const di = Math.floor(k / pool.size[1]);
    const dj = k % pool.size[1];
    // v·mask at rows di + sh·i, columns dj + sw·j: interleave zeros, then shift.
    const spread = tf.reshape(tf.pad(tf.reshape(tf.mul(v, mask), [n, oh, 1, ow, 1, c]), [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]]), [n, oh * sh, ow * sw, c]);
    const rows = Math.min(oh * sh, ph - di);
    const cols = Math.min(ow * sw, pw - dj);
    const placed = tf.pad(tf.slice(spread, [0, 0, 0, 0], [n, rows, cols, c]), [[0, 0], [di, ph - di - rows], [dj, pw - dj - cols], [0, 0]]) as tf.Tensor4D;
    sum = sum === undefined ? placed : (tf.add(sum, placed) as tf.Tensor4D);
  });
  return tf.slice(sum!, [0, win.top, win.left, 0], [n, h, w, c]);
}

/**
 * Windows of 2×2, 4×4… (powers of two) tiling the input (pool size =
 * stride, no padding): the routing is a mask over x's own layout, built from
 * same-shape ops (the cpu backend broadcasts and slices slowly). Each window's
 * maxima get the priority K − (row-major index) — a constant pattern written
 * row by row — and the one whose priority equals the window's largest wins.
 * Upsampling by nearest neighbour is exact for these sizes.
 */
function tiledRouting(x: tf.Tensor4D, pool: PoolSpec): (v: tf.Tensor4D) => tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  const [kh, kw] = pool.size;
  const [oh, ow] = [Math.floor(h / kh), Math.floor(w / kw)];
  const [th, tw] = [oh * kh, ow * kw];
  const tiles = th === h && tw === w ? x : (tf.slice(x, [0, 0, 0, 0], [n, th, tw, c]) as tf.Tensor4D);
  const up = (t: tf.Tensor4D) => tf.image.resizeNearestNeighbor(t, [th, tw]);
  const rows = Array.from({ length: kh }, (_, di) => {
    const row = new Float32Array(tw * c);
    for (let j = 0; j < tw; j++) row.fill(kh * kw - (di * kw + (j % kw)), j * c, (j + 1) * c);
    return row;
  });
  const pattern = new Float32Array(n * th * tw * c);
  for (let b = 0; b < n; b++) for (let i = 0; i < th; i++) pattern.set(rows[i % kh], (b * th + i) * tw * c);
  const keys = tf.mul(tf.cast(tf.equal(tiles, up(tf.maxPool(tiles, pool.size, pool.strides, 'valid'))), 'float32'), tf.tensor4d(pattern, [n, th, tw, c]));
  const mask = tf.cast(tf.equal(keys, up(tf.maxPool(keys as tf.Tensor4D, pool.size, pool.strides, 'valid'))), 'float32');
  return (v) => {
    const routed = tf.mul(mask, up(v.shape[1] === oh && v.shape[2] === ow ? v : (tf.slice(v, [0, 0, 0, 0], [n, oh, ow, c]) as tf.Tensor4D))) as tf.Tensor4D;
    return th === h && tw === w ? routed : tf.pad(routed, [[0, 0], [0, h - th], [0, w - tw], [0, 0]]);
  };
}

const powerOfTwo = (k: number) => k >= 1 && (k & (k - 1)) === 0;

/** The backward pass of max pooling for any values v at its outputs: v goes to the first maximum (row-major) of each window of x. */
export function maxPoolRouting(x: tf.Tensor4D, pool: PoolSpec): (v: tf.Tensor4D) => tf.Tensor4D {
  const [kh, kw] = pool.size;
  if (pool.padding === 'valid' && kh === pool.strides[0] && kw === pool.strides[1] && powerOfTwo(kh) && powerOfTwo(kw)) return tiledRouting(x, pool);
  const win = windows(x, pool);
  const masks = firstMaxMasks(x, pool, win);
  return (v) => route(v, x, pool, win, masks);
}

/** Max pooling whose gradient is the ordinary one, ties going to the first maximum as in PyTorch. */
export function maxPoolFirstMax(x: tf.Tensor4D, pool: PoolSpec): tf.Tensor4D {
  const op = tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const value = tf.maxPool(input as tf.Tensor4D, pool.size, pool.strides, pool.padding);
    (save as tf.GradSaveFunc)([input as tf.Tensor4D]);
    return { value, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => maxPoolRouting(saved[0] as tf.Tensor4D, pool)(dy as tf.Tensor4D) };
  });
  return op(x) as tf.Tensor4D;
}

// ---------------------------------------------------------------- rules

/** The data of the tensors an op read and wrote in the forward pass: what identifies them in its backward pass (saved tensors are copies, with other ids on some backends). */
interface ForwardKeys {
  input: object;
  output: object;
}

/** An element-wise op: `fn`'s forward, with a backward pass of our choosing. */
function elementwise(fn: (x: tf.Tensor) => tf.Tensor, backward: (dy: tf.Tensor, x: tf.Tensor, y: tf.Tensor, keys: ForwardKeys) => tf.Tensor): (x: tf.Tensor) => tf.Tensor {
  return (x) =>
    tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
      const y = fn(input as tf.Tensor);
      (save as tf.GradSaveFunc)([input as tf.Tensor, y]);
      const keys = { input: (input as tf.Tensor).dataId, output: y.dataId };
      return { value: y, gradFunc: (dy: tf.Tensor, [xs, ys]: tf.Tensor[]) => backward(dy, xs, ys, keys) };
    })(x);
}

/**
 * Guided backprop (Springenberg et al.; Captum's GuidedBackprop): a ReLU
 * passes back only positive gradients, and only where its input was positive.
 * Only ReLU is modified, as in Captum (which hooks nn.ReLU alone, not ReLU6).
 */
export function guidedBackpropRules(plainLayers: ReadonlySet<string> = new Set()): BackwardRules {
  const relu = elementwise(tf.relu, (dy, x) => tf.relu(tf.mul(dy, tf.step(x))));
  return { activation: { replaces: (name) => name === 'relu', apply: (_name, x) => relu(x) }, maxPool: maxPoolFirstMax, plainLayers };
}

/** Captum DeepLift's ε: below it a difference from the reference counts as none, and the plain gradient is used. */
export const DEEPLIFT_EPS = 1e-10;

/** The non-linearities DeepLift's rescale rule covers, as Captum's SUPPORTED_NON_LINEAR (by tfjs name), with their derivative for the |Δx| < ε case. */
const RESCALED: Record<string, { fn: (x: tf.Tensor) => tf.Tensor; derivative: (x: tf.Tensor, y: tf.Tensor) => tf.Tensor }> = {
  relu: { fn: tf.relu, derivative: (x) => tf.step(x) },
  elu: { fn: tf.elu, derivative: (x, y) => tf.where(tf.greater(x, 0), tf.onesLike(x), tf.add(y, 1)) },
  sigmoid: { fn: tf.sigmoid, derivative: (_x, y) => tf.mul(y, tf.sub(1, y)) },
  tanh: { fn: tf.tanh, derivative: (_x, y) => tf.sub(1, tf.square(y)) },
  softplus: { fn: tf.softplus, derivative: (x) => tf.sigmoid(x) },
};

/** For a batch [inputs; references]: (input − reference) for both halves. */
function pairedDelta(t: tf.Tensor): tf.Tensor {
  const half = t.shape[0] / 2;
  const [a, r] = tf.split(t, [half, half], 0);
  const d = tf.sub(a, r);
  return tf.concat([d, d], 0);
}

/** g·Δout/Δin where |Δin| ≥ ε, else the plain gradient. */
function rescaled(plain: tf.Tensor, numerator: tf.Tensor, deltaIn: tf.Tensor): tf.Tensor {
  const small = tf.less(tf.abs(deltaIn), DEEPLIFT_EPS);
  return tf.where(small, plain, tf.div(numerator, tf.where(small, tf.onesLike(deltaIn), deltaIn)));
}

/**
 * DeepLift's rescale rule as Captum 0.8 implements it, for a batch holding
 * the inputs and then their references, scored together: at each
 * non-linearity the gradient becomes the multiplier Δout/Δin (the plain
 * gradient where |Δin| < ε); at max pooling (Captum's own rule) the
 * output differences split at the cross maximum of input and reference,
 * max(y, y_ref) − y_ref routed to the input's maxima and y − max(y, y_ref) to
 * the reference's, summed and divided by Δin. Take fresh rules for each
 * gradient computation: they keep state during its backward pass.
 */
export function deepLiftRules(plainLayers: ReadonlySet<string> = new Set()): BackwardRules {
  // Captum hooks each module's input tensor and reads the gradient at its
  // output from a hook on the output tensor. Where one hooked module feeds
  // another (ReLU → MaxPool), both hooks sit on the same tensor and the
  // first module's runs first: it sees the gradient before the second's rule
  // replaced it, i.e. the plain gradient there. Each rule therefore records,
  // per input tensor, how far its gradient departs from the plain one, and
  // the rule upstream takes that departure back out of its Δout/Δin branch.
  // (tfjs 4.22 calls a custom op's gradFunc outside the per-input tidy of
  // the backward pass, so what it records lives until that pass ends.)
  const departures = new Map<object, tf.Tensor[]>();
  const record = (keys: ForwardKeys, modified: tf.Tensor, plain: tf.Tensor): tf.Tensor => {
    departures.set(keys.input, [...(departures.get(keys.input) ?? []), tf.sub(modified, plain)]);
    return modified;
  };
  const plainAtOutput = (dy: tf.Tensor, keys: ForwardKeys): tf.Tensor => {
    const recorded = departures.get(keys.output);
    departures.delete(keys.output);
    return recorded === undefined ? dy : tf.sub(dy, recorded.length === 1 ? recorded[0] : tf.addN(recorded));
  };
  const ops = Object.fromEntries(
    Object.entries(RESCALED).map(([name, { fn, derivative }]) => [
      name,
      elementwise(fn, (dy, x, y, keys) => {
        const plain = tf.mul(dy, derivative(x, y));
        return record(keys, rescaled(plain, tf.mul(plainAtOutput(dy, keys), pairedDelta(y)), pairedDelta(x)), plain);
      }),
    ]),
  );
  const maxPool = (x: tf.Tensor4D, pool: PoolSpec): tf.Tensor4D =>
    tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
      const y = tf.maxPool(input as tf.Tensor4D, pool.size, pool.strides, pool.padding);
      (save as tf.GradSaveFunc)([input as tf.Tensor4D, y]);
      const keys = { input: (input as tf.Tensor).dataId, output: y.dataId };
      return {
        value: y,
        gradFunc: (dy: tf.Tensor, [xs, ys]: tf.Tensor[]) => {
          const half = ys.shape[0] / 2;
          const [yInput, yReference] = tf.split(ys, [half, half], 0);
          const cross = tf.maximum(yInput, yReference);
          const deltaOut = tf.concat([tf.sub(cross, yReference), tf.sub(yInput, cross)], 0);
          const routing = maxPoolRouting(xs as tf.Tensor4D, pool);
          const [toInput, toReference] = tf.split(routing(tf.mul(plainAtOutput(dy, keys), deltaOut) as tf.Tensor4D), [half, half], 0);
          const both = tf.add(toInput, toReference);
          const plain = routing(dy as tf.Tensor4D);
          return record(keys, rescaled(plain, tf.concat([both, both], 0), pairedDelta(xs)), plain);
        },
      };
    })(x) as tf.Tensor4D;
  return { activation: { replaces: (name) => name in RESCALED, apply: (name, x) => ops[name](x) }, maxPool, plainLayers };
}
