/**
 * What takes a training loop's steps: the model's own tfjs variables
 * (tfjs-trainer.ts) or ONNX Runtime sessions over flat weight vectors
 * (onnx-trainer.ts). The loop (train-loop.ts) owns batches, epochs,
 * schedules and checkpoints and is written once against this interface.
 */
import type * as tf from '@tensorflow/tfjs';

/** The optimizer's settings, defaults resolved (train-loop.ts states their semantics). */
export interface ResolvedOptimizer {
  kind: 'sgd' | 'adam';
  learningRate: number;
  momentum: number;
  nesterov: boolean;
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

/** What a step or an evaluation measured on its batch. */
export interface BatchStatistics {
  /** Σ w·l over the batch (w: the class weight of each image's label, 1 without class weights). */
  readonly weightedSum: number;
  readonly weightSum: number;
  /** Images whose largest logit is their label's. */
  readonly correct: number;
}

export interface StepOptions {
  /** Train the head alone (freezeEpochs): every other weight gets no gradient. */
  readonly headOnly: boolean;
  readonly learningRate: number;
  /** Draws the step's dropout masks. */
  readonly seed: number;
  /** Weight per class of the cross-entropy (absent: 1). */
  readonly classWeights?: readonly number[];
}

/** A tensor of a checkpoint's optimizer state. */
export interface StateEntry {
  name: string;
  shape: number[];
  values: Float32Array;
}

export interface Trainer {
  /** Which engine takes the steps, for messages. */
  readonly engine: 'tfjs' | 'onnx';
  /** One optimizer step on a batch of network inputs; its statistics are measured before the update. */
  step(x: tf.Tensor4D, labels: Int32Array, options: StepOptions): Promise<BatchStatistics>;
  /** The batch in inference mode with the current weights. */
  evaluate(x: tf.Tensor4D, labels: Int32Array, classWeights?: readonly number[]): Promise<BatchStatistics>;
  /** Makes the tfjs model hold the current weights and running statistics. */
  syncModel(): void;
  /** Optimizer steps taken by each trainable weight (model.trainableWeights order). */
  slotSteps(): number[];
  /** The optimizer's state: `opt/<i>/m` and `opt/<i>/v` for trainable weight i. */
  stateEntries(): StateEntry[];
  /** Continues from a checkpoint: the model's weights are already restored; these are the optimizer's. */
  restore(steps: readonly number[], state: ReadonlyMap<string, { shape: number[]; values: Float32Array | Int32Array }>): void;
  dispose(): Promise<void>;
}

/** The head trained alone during freezeEpochs: the last Dense layer's weights. */
export function headWeights(model: tf.LayersModel): tf.LayerVariable[] {
  const head = [...model.layers].reverse().find((layer) => layer.getClassName() === 'Dense');
  return head ? head.trainableWeights : [];
}
