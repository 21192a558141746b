/**
 * Gradients of a class score with respect to the input image or to a layer's
 * activations — what saliency methods need — with the model's weights held
 * constant, so no weight-gradient kernel (Conv2DBackpropFilter, the bias sums,
 * Dense's dW matMul) ever runs. One forward pass and one backward pass.
 *
 * The score of image i is the output for class target[i]: the logit, i.e. a
 * final softmax is left out unless `beforeSoftmax: false`. Layers run in
 * inference mode: batch norm on its moving statistics, dropout off.
 */
import { distance } from 'fastest-levenshtein';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { callLayer, isSoftmaxLayer, activationName, type CallOptions } from './constant-weight-layers.ts';
import { compileLayerGraph, dependsOn, producerIndex, stepsNeededFor, type LayerGraph } from './layer-graph.ts';

export interface ScoreOptions {
  /** Which of the model's outputs holds the class scores (default 0). */
  readonly output?: number;
  /** Score the logits, leaving out a final softmax (default true). */
  readonly beforeSoftmax?: boolean;
}

export interface LayerGradient {
  /** The layer's output for each image. */
  readonly activations: tf.Tensor;
  /** ∂score/∂activations, same shape. */
  readonly gradients: tf.Tensor;
}

type Values = Map<string, tf.Tensor>;

function run(graph: LayerGraph, values: Values, from: number, to: number, needed: readonly boolean[], options: (index: number) => CallOptions): void {
  for (let i = from; i < to; i++) {
    if (!needed[i]) continue;
    const step = graph.steps[i];
    const outputs = callLayer(step, step.inputs.map((key) => values.get(key) as tf.Tensor), options(i));
    step.outputs.forEach((key, j) => values.set(key, outputs[j]));
  }
}

/** What is scored: the output's key, and the step whose softmax is to be left out (-1: none). */
function scoreSource(model: tf.LayersModel, graph: LayerGraph, options: ScoreOptions): { key: string; unsoftmaxed: number } {
  const index = options.output ?? 0;
  if (!Number.isInteger(index) || index < 0 || index >= graph.outputs.length) {
    throw new UserError(`Model ${model.name} has ${graph.outputs.length} output(s); output ${index} does not exist.`);
  }
  const key = graph.outputs[index];
  const producer = producerIndex(graph, key);
  if (options.beforeSoftmax === false || producer < 0) return { key, unsoftmaxed: -1 };
  const layer = graph.steps[producer].layer;
  if (isSoftmaxLayer(layer) || activationName(layer) === 'softmax') return { key, unsoftmaxed: producer };
  return { key, unsoftmaxed: -1 };
}

function checkTargets(output: tf.Tensor, target: readonly number[]): void {
  const batch = output.shape[0];
  const classes = output.size / batch;
  if (target.length !== batch) {
    throw new UserError(`${target.length} target class(es) given for a batch of ${batch} image(s); give one per image.`);
  }
  const bad = target.find((t) => !Number.isInteger(t) || t < 0 || t >= classes);
  if (bad !== undefined) throw new UserError(`Target class ${bad} does not exist: the model scores ${classes} classes (0…${classes - 1}).`);
}

/** Σᵢ output[i, target[i]] — each image's gradient is that of its own score, as images do not interact in inference. */
function classScore(output: tf.Tensor, target: readonly number[]): tf.Scalar {
  checkTargets(output, target);
  const flat = tf.reshape(output, [output.shape[0], -1]);
  // oneHot in int32, then cast: tfjs-backend-wasm 4.22's OneHot writes int32 bits into a float32 output.
  const mask = tf.cast(tf.oneHot(tf.tensor1d([...target], 'int32'), flat.shape[1] as number), 'float32');
  return tf.sum(tf.mul(flat, mask));
}

function singleInput(model: tf.LayersModel, x: tf.Tensor): tf.Tensor {
  if (model.inputs.length !== 1) throw new UserError(`Model ${model.name} takes ${model.inputs.length} inputs; gradients are computed for single-input models only.`);
  return x.dtype === 'float32' ? x : tf.cast(x, 'float32');
}

function nearestNames(name: string, known: Iterable<string>, count = 5): string[] {
  return [...new Set(known)]
    .map((candidate) => ({ candidate, d: distance(name.toLowerCase(), candidate.toLowerCase()) }))
    .sort((a, b) => a.d - b.d || a.candidate.localeCompare(b.candidate))
    .slice(0, count)
    .map(({ candidate }) => candidate);
}

function layerKey(model: tf.LayersModel, graph: LayerGraph, layerName: string): string {
  const calls = graph.named.get(layerName);
  if (calls === undefined) {
    throw new UserError(`Model ${model.name} has no layer named "${layerName}"; nearest: ${nearestNames(layerName, graph.named.keys()).join(', ')}.`);
  }
  if (calls.length > 1) {
    throw new UserError(`"${layerName}" names ${calls.length} layer calls in model ${model.name} (a shared layer, or one name in several nested models), so its activations are ambiguous; give a nested layer as model/layer, or pick a layer called once.`);
  }
  if (calls[0].length !== 1) throw new UserError(`Layer "${layerName}" has ${calls[0].length} outputs; pick a layer with one output.`);
  return calls[0][0];
}

/**
 * Forward to `key` without a tape, then forward from there to the score and
 * back under tf.grad: every layer runs once, and the backward pass starts at
 * the score and stops at `key`.
 */
function gradientAt(model: tf.LayersModel, graph: LayerGraph, x: tf.Tensor, key: string, target: readonly number[], options: ScoreOptions): LayerGradient {
  const source = scoreSource(model, graph, options);
  if (!dependsOn(graph, source.key, key)) throw new UserError(`The output of model ${model.name} does not depend on that layer; pick one on the path to the output.`);
  const needed = stepsNeededFor(graph, source.key);
  const split = producerIndex(graph, key) + 1;
  const callOptions = (constantWeights: boolean) => (i: number): CallOptions => ({ constantWeights, withoutSoftmax: i === source.unsoftmaxed });
  const values: Values = new Map([[graph.inputs[0], singleInput(model, x)]]);
  run(graph, values, 0, split, needed, callOptions(false));
  const activations = values.get(key) as tf.Tensor;
  const gradients = tf.grad((a: tf.Tensor) => {
    values.set(key, a);
    run(graph, values, split, graph.steps.length, needed, callOptions(true));
    return classScore(values.get(source.key) as tf.Tensor, target);
  })(activations);
  return { activations, gradients };
}

/** ∂score/∂x for each image of the batch x, where score is the logit of class target[i] for image i. */
export function inputGradient(model: tf.LayersModel, x: tf.Tensor, target: readonly number[], options: ScoreOptions = {}): tf.Tensor {
  const graph = compileLayerGraph(model);
  return tf.tidy(() => gradientAt(model, graph, x, graph.inputs[0], target, options).gradients);
}

/** The named layer's activations and ∂score/∂activations (what Grad-CAM needs), in one forward and one backward pass. */
export function layerGradient(model: tf.LayersModel, x: tf.Tensor, layerName: string, target: readonly number[], options: ScoreOptions = {}): LayerGradient {
  const graph = compileLayerGraph(model);
  const key = layerKey(model, graph, layerName);
  return tf.tidy(() => {
    const { activations, gradients } = gradientAt(model, graph, x, key, target, options);
    return { activations: key === graph.inputs[0] ? tf.clone(activations) : activations, gradients };
  });
}

/**
 * The model's forward pass in inference mode, built so that gradients taken
 * through it (tf.grad, tf.grads) never compute weight gradients. Returns every
 * output of the model.
 */
export function withConstantWeights(model: tf.LayersModel): (inputs: tf.Tensor | tf.Tensor[]) => tf.Tensor[] {
  const graph = compileLayerGraph(model);
  const everything = graph.steps.map(() => true);
  const options: CallOptions = { constantWeights: true, withoutSoftmax: false };
  return (inputs) =>
    tf.tidy(() => {
      const list = Array.isArray(inputs) ? inputs : [inputs];
      if (list.length !== graph.inputs.length) throw new UserError(`Model ${model.name} takes ${graph.inputs.length} input(s); ${list.length} given.`);
      const values: Values = new Map(graph.inputs.map((key, i) => [key, list[i]]));
      run(graph, values, 0, graph.steps.length, everything, () => options);
      return graph.outputs.map((key) => values.get(key) as tf.Tensor);
    });
}
