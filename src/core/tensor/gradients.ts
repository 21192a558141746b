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
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.ts';
import { nearestNames } from '../manifest/suggest.ts';
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

/** Runs steps [from, to); `onOutput` may stand in another tensor for a step's output (a probe). */
function run(graph: LayerGraph, values: Values, from: number, to: number, needed: readonly boolean[], options: (index: number) => CallOptions, onOutput?: (key: string, value: tf.Tensor) => tf.Tensor): void {
  for (let i = from; i < to; i++) {
    if (!needed[i]) continue;
    const step = graph.steps[i];
    const outputs = callLayer(step, step.inputs.map((key) => values.get(key) as tf.Tensor), options(i));
    step.outputs.forEach((key, j) => values.set(key, onOutput ? onOutput(key, outputs[j]) : outputs[j]));
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

function layerKey(model: tf.LayersModel, graph: LayerGraph, layerName: string): string {
  const calls = graph.named.get(layerName);
  if (calls === undefined) {
    throw new UserError(`Model ${model.name} has no layer named "${layerName}"; nearest: ${nearestNames(layerName, [...graph.named.keys()].sort((a, b) => a.localeCompare(b))).join(', ')}.`);
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

export interface LayerGradients {
  /** One per layer asked for, in that order: its output and ∂score/∂output. */
  readonly layers: LayerGradient[];
  /** ∂score/∂x, when asked for with `inputGradient`. */
  readonly input?: tf.Tensor;
}

function producers(graph: LayerGraph): Map<string, number> {
  const index = new Map<string, number>();
  graph.steps.forEach((step, i) => step.outputs.forEach((key) => index.set(key, i)));
  return index;
}

/**
 * Activations and gradients at several layers at once — and at the input if
 * asked — from one forward and one backward pass (multi-layer CAMs,
 * FullGrad). The forward runs without a tape up to the earliest layer asked
 * for; from there each layer asked for passes through an identity whose
 * gradient records what reaches it, so the backward pass runs once whatever
 * the number of layers.
 */
export function layerGradients(
  model: tf.LayersModel,
  x: tf.Tensor,
  layerNames: readonly string[],
  target: readonly number[],
  options: ScoreOptions & { readonly inputGradient?: boolean } = {},
): LayerGradients {
  const graph = compileLayerGraph(model);
  const source = scoreSource(model, graph, options);
  const keys = layerNames.map((name) => layerKey(model, graph, name));
  keys.forEach((key, i) => {
    if (!dependsOn(graph, source.key, key)) throw new UserError(`The output of model ${model.name} does not depend on layer "${layerNames[i]}"; pick one on the path to the output.`);
  });
  const inputKey = graph.inputs[0];
  const wanted = new Set(keys);
  if (options.inputGradient) wanted.add(inputKey);
  if (wanted.size === 0) throw new Error('layerGradients needs a layer or the input gradient');
  const producedBy = producers(graph);
  const producer = (key: string) => producedBy.get(key) ?? -1;
  const needed = stepsNeededFor(graph, source.key);
  const split = Math.min(...[...wanted].map((key) => producer(key) + 1));
  // What the taped part reads from the untaped part: the tensors it differentiates from.
  const frontier = new Set<string>();
  for (let i = split; i < graph.steps.length; i++) {
    if (!needed[i]) continue;
    for (const key of graph.steps[i].inputs) if (producer(key) < split) frontier.add(key);
  }
  if (producer(source.key) < split) frontier.add(source.key);
  const callOptions = (constantWeights: boolean) => (i: number): CallOptions => ({ constantWeights, withoutSoftmax: i === source.unsoftmaxed });

  // Tensors made inside the engine's own scopes survive them only kept; each is cloned into ours and freed at the end.
  const kept: tf.Tensor[] = [];
  const keep = (tensor: tf.Tensor): tf.Tensor => {
    kept.push(tensor);
    return tf.keep(tensor);
  };
  try {
    return tf.tidy(() => {
      const values: Values = new Map([[inputKey, singleInput(model, x)]]);
      run(graph, values, 0, split, needed, callOptions(false));
      const frontierKeys = [...frontier];
      const xs = frontierKeys.map((key) => values.get(key) as tf.Tensor);
      const activations = new Map<string, tf.Tensor>();
      const gradients = new Map<string, tf.Tensor>();
      const probe = (key: string, value: tf.Tensor, inTape: boolean): tf.Tensor => {
        if (!wanted.has(key) || activations.has(key)) return value;
        activations.set(key, inTape ? keep(value) : value);
        return tf.customGrad((a: tf.Tensor | tf.GradSaveFunc) => ({
          value: tf.clone(a as tf.Tensor),
          gradFunc: (dy: tf.Tensor) => {
            gradients.set(key, keep(tf.clone(dy)));
            return dy;
          },
        }))(value);
      };
      tf.engine().gradients(
        () => {
          frontierKeys.forEach((key, i) => values.set(key, probe(key, xs[i], false)));
          run(graph, values, split, graph.steps.length, needed, callOptions(true), (key, value) => probe(key, value, true));
          return classScore(values.get(source.key) as tf.Tensor, target);
        },
        xs,
        undefined,
        true,
      );
      const gradientAt = (key: string): tf.Tensor => {
        const found = gradients.get(key);
        return found ? tf.clone(found) : tf.zerosLike(activations.get(key) as tf.Tensor);
      };
      return {
        layers: keys.map((key) => ({ activations: tf.clone(activations.get(key) as tf.Tensor), gradients: gradientAt(key) })),
        input: options.inputGradient ? gradientAt(inputKey) : undefined,
      };
    });
  } finally {
    for (const tensor of kept) tensor.dispose();
  }
}

function repeatRows(value: tf.Tensor, rows: number): tf.Tensor {
  if (value.shape[0] === rows) return value;
  if (value.shape[0] !== 1) throw new Error(`forwardFromLayer: the input holds ${value.shape[0]} images for ${rows} rows of activations; give 1 or ${rows}`);
  return tf.tile(value, [rows, ...value.shape.slice(1).map(() => 1)]);
}

/**
 * The class scores (the model's output, a final softmax left out unless
 * `beforeSoftmax: false`) when the named layer's output is replaced by
 * `activations`: the network runs on from there, in inference mode and without
 * a tape (AblationCAM). Where a later layer also reads values that bypass the
 * replaced one (a residual connection around it), those come from `input`,
 * holding either one image — computed once, repeated for every row of
 * `activations` — or one per row.
 */
export function forwardFromLayer(model: tf.LayersModel, layerName: string, activations: tf.Tensor, options: ScoreOptions & { readonly input?: tf.Tensor } = {}): tf.Tensor {
  const graph = compileLayerGraph(model);
  const key = layerKey(model, graph, layerName);
  const source = scoreSource(model, graph, options);
  if (!dependsOn(graph, source.key, key)) throw new UserError(`The output of model ${model.name} does not depend on layer "${layerName}"; pick one on the path to the output.`);
  // Steps the output needs once `key` is given: the walk back stops at it.
  const wanted = new Set([source.key]);
  const used = new Array<boolean>(graph.steps.length).fill(false);
  for (let i = graph.steps.length - 1; i >= 0; i--) {
    const step = graph.steps[i];
    if (step.outputs.includes(key) || !step.outputs.some((output) => wanted.has(output))) continue;
    used[i] = true;
    for (const input of step.inputs) wanted.add(input);
  }
  const rows = activations.shape[0];
  return tf.tidy(() => {
    const values: Values = new Map([[key, activations]]);
    if (options.input && key !== graph.inputs[0]) values.set(graph.inputs[0], singleInput(model, options.input));
    const replaced = new Set([key]);
    for (let i = 0; i < graph.steps.length; i++) {
      if (!used[i]) continue;
      const step = graph.steps[i];
      const downstream = step.inputs.some((input) => replaced.has(input));
      const inputs = step.inputs.map((input) => {
        const value = values.get(input);
        if (value === undefined) {
          throw new UserError(`Layers after "${layerName}" in model ${model.name} also read values that bypass it (e.g. a residual connection); the network's input is needed to compute them.`);
        }
        return downstream && !replaced.has(input) ? repeatRows(value, rows) : value;
      });
      const outputs = callLayer(step, inputs, { constantWeights: false, withoutSoftmax: i === source.unsoftmaxed });
      step.outputs.forEach((output, j) => {
        values.set(output, outputs[j]);
        if (downstream) replaced.add(output);
      });
    }
    return tf.clone(values.get(source.key) as tf.Tensor);
  });
}

/** The model's class scores for x — logits: a final softmax left out unless `beforeSoftmax: false` — in inference mode, without a tape. */
export function classScores(model: tf.LayersModel, x: tf.Tensor, options: ScoreOptions = {}): tf.Tensor {
  const graph = compileLayerGraph(model);
  const source = scoreSource(model, graph, options);
  const needed = stepsNeededFor(graph, source.key);
  return tf.tidy(() => {
    const values: Values = new Map([[graph.inputs[0], singleInput(model, x)]]);
    run(graph, values, 0, graph.steps.length, needed, (i) => ({ constantWeights: false, withoutSoftmax: i === source.unsoftmaxed }));
    return tf.clone(values.get(source.key) as tf.Tensor);
  });
}

/** The named layers' outputs for x, in inference mode and without a tape; the forward stops at the last of them. */
export function layerOutputs(model: tf.LayersModel, x: tf.Tensor, layerNames: readonly string[]): tf.Tensor[] {
  const graph = compileLayerGraph(model);
  const keys = layerNames.map((name) => layerKey(model, graph, name));
  const needed = graph.steps.map(() => false);
  for (const key of keys) stepsNeededFor(graph, key).forEach((use, i) => (needed[i] ||= use));
  return tf.tidy(() => {
    const values: Values = new Map([[graph.inputs[0], singleInput(model, x)]]);
    run(graph, values, 0, graph.steps.length, needed, () => ({ constantWeights: false, withoutSoftmax: false }));
    return keys.map((key) => tf.clone(values.get(key) as tf.Tensor));
  });
}
