/**
 * Training steps on TensorFlow.js: the model's own variables, tf.variableGrads
 * for the gradients, and the optimizers written here with PyTorch's
 * semantics (train-loop.ts states them). tfjs's optimizers are not used: they
 * cannot change their learning rate between epochs, their weight decay is not
 * PyTorch's, and restoring Adam's state through setWeights depends on
 * undocumented variable ordering. Owning the state makes a resumed run
 * bit-identical to an uninterrupted one.
 *
 * Dropout draws from Math.random when a layer has no seed, so each step runs
 * with Math.random replaced by a generator seeded with the step's seed.
 */
import * as tf from '@tensorflow/tfjs';
import { withSeededMathRandom } from '../random.ts';
import { registerBatchNormGradient } from './batch-norm-gradient.ts';
import './pytorch-batch-norm.ts';
import { headWeights, type BatchStatistics, type ResolvedOptimizer, type StateEntry, type StepOptions, type Trainer } from './trainer.ts';

interface SlotState {
  /** Momentum buffer (sgd) or first moment (adam). */
  m?: tf.Variable;
  /** Second moment (adam). */
  v?: tf.Variable;
  step: number;
}

class Optimizer {
  readonly slots: SlotState[];

  constructor(
    readonly settings: ResolvedOptimizer,
    readonly variables: tf.Variable[],
  ) {
    this.slots = variables.map(() => ({ step: 0 }));
  }

  private ensure(i: number): SlotState {
    const slot = this.slots[i];
    const shape = this.variables[i].shape;
    const needsM = this.settings.kind === 'adam' || this.settings.momentum > 0;
    // Inside tidy, so the zeros each variable starts from are freed (a variable keeps its own reference to the data).
    if (needsM && !slot.m) slot.m = tf.tidy(() => tf.variable(tf.zeros(shape), false));
    if (this.settings.kind === 'adam' && !slot.v) slot.v = tf.tidy(() => tf.variable(tf.zeros(shape), false));
    return slot;
  }

  /** One update of the variables at `indices` with their gradients (same order); call inside tf.tidy. */
  apply(indices: number[], grads: tf.Tensor[], learningRate: number): void {
    const s = this.settings;
    indices.forEach((i, k) => {
      const w = this.variables[i];
      const slot = this.ensure(i);
      slot.step++;
      let g = grads[k];
      if (s.weightDecay > 0) g = tf.add(g, tf.mul(w, s.weightDecay));
      let update: tf.Tensor;
      if (s.kind === 'sgd') {
        if (slot.m) {
          const buf = tf.add(tf.mul(slot.m, s.momentum), g);
          slot.m.assign(buf);
          update = s.nesterov ? tf.add(g, tf.mul(buf, s.momentum)) : buf;
        } else {
          update = g;
        }
        w.assign(tf.sub(w, tf.mul(update, learningRate)));
      } else {
        const m = tf.add(tf.mul(slot.m!, s.beta1), tf.mul(g, 1 - s.beta1));
        const v = tf.add(tf.mul(slot.v!, s.beta2), tf.mul(tf.square(g), 1 - s.beta2));
        slot.m!.assign(m);
        slot.v!.assign(v);
        const c1 = 1 - Math.pow(s.beta1, slot.step);
        const c2 = 1 - Math.pow(s.beta2, slot.step);
        const denominator = tf.add(tf.div(tf.sqrt(v), Math.sqrt(c2)), s.epsilon);
        w.assign(tf.sub(w, tf.div(tf.mul(m, learningRate / c1), denominator)));
      }
    });
  }

  dispose(): void {
    for (const slot of this.slots) {
      slot.m?.dispose();
      slot.v?.dispose();
    }
  }
}

function lossAndCorrect(logits: tf.Tensor, labels: tf.Tensor1D, classes: number, classWeights: tf.Tensor1D | undefined): { weightedSum: tf.Scalar; weightSum: tf.Scalar; correct: tf.Scalar } {
  const logProbabilities = tf.logSoftmax(logits as tf.Tensor2D);
  const perSample = tf.neg(tf.sum(tf.mul(tf.oneHot(labels, classes), logProbabilities), 1));
  const weights = classWeights ? tf.gather(classWeights, labels) : tf.onesLike(perSample);
  return {
    weightedSum: tf.sum(tf.mul(perSample, weights)),
    weightSum: tf.sum(weights),
    correct: tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(labels, 'int32')), 'float32')),
  };
}

function statistics(parts: tf.Scalar[]): BatchStatistics {
  const [weightedSum, weightSum, correct] = parts.map((t) => t.dataSync()[0]);
  tf.dispose(parts);
  return { weightedSum, weightSum, correct };
}

export class TfjsTrainer implements Trainer {
  readonly engine = 'tfjs';
  private readonly optimizer: Optimizer;
  private readonly classes: number;
  private readonly headIndices: number[];
  private readonly allIndices: number[];
  private classWeights?: { values: readonly number[]; tensor: tf.Tensor1D };

  constructor(
    readonly model: tf.LayersModel,
    settings: ResolvedOptimizer,
  ) {
    registerBatchNormGradient();
    const trainable = model.trainableWeights.map((w) => w.read() as tf.Variable);
    this.optimizer = new Optimizer(settings, trainable);
    const headIds = new Set(headWeights(model).map((w) => w.read().id));
    this.headIndices = trainable.flatMap((v, i) => (headIds.has(v.id) ? [i] : []));
    this.allIndices = trainable.map((_, i) => i);
    const shape = model.outputs[0].shape;
    this.classes = shape[shape.length - 1] as number;
  }

  private weightsTensor(values: readonly number[] | undefined): tf.Tensor1D | undefined {
    if (!values) return undefined;
    if (this.classWeights?.values !== values) {
      this.classWeights?.tensor.dispose();
      this.classWeights = { values, tensor: tf.tensor1d([...values]) };
    }
    return this.classWeights.tensor;
  }

  async step(x: tf.Tensor4D, labels: Int32Array, options: StepOptions): Promise<BatchStatistics> {
    const indices = options.headOnly ? this.headIndices : this.allIndices;
    const variables = indices.map((i) => this.optimizer.variables[i]);
    const classWeights = this.weightsTensor(options.classWeights);
    const kept = tf.tidy(() =>
      withSeededMathRandom(options.seed, () => {
        const y = tf.tensor1d(labels, 'int32');
        let parts: tf.Scalar[] = [];
        const { grads } = tf.variableGrads(() => {
          const logits = this.model.apply(x, { training: true }) as tf.Tensor;
          const measured = lossAndCorrect(logits, y, this.classes, classWeights);
          parts = [tf.keep(measured.weightedSum), tf.keep(measured.weightSum), tf.keep(measured.correct)];
          return tf.div(measured.weightedSum, measured.weightSum) as tf.Scalar;
        }, variables);
        this.optimizer.apply(indices, variables.map((v) => grads[v.name]), options.learningRate);
        return parts;
      }),
    );
    return statistics(kept);
  }

  async evaluate(x: tf.Tensor4D, labels: Int32Array, classWeights?: readonly number[]): Promise<BatchStatistics> {
    const weights = this.weightsTensor(classWeights);
    const parts = tf.tidy(() => {
      const logits = this.model.apply(x, { training: false }) as tf.Tensor;
      const measured = lossAndCorrect(logits, tf.tensor1d(labels, 'int32'), this.classes, weights);
      return [measured.weightedSum, measured.weightSum, measured.correct];
    });
    return statistics(parts);
  }

  syncModel(): void {
    // The model's variables are the state.
  }

  slotSteps(): number[] {
    return this.optimizer.slots.map((slot) => slot.step);
  }

  stateEntries(): StateEntry[] {
    const entries: StateEntry[] = [];
    this.optimizer.slots.forEach((slot, i) => {
      if (slot.m) entries.push({ name: `opt/${i}/m`, shape: slot.m.shape, values: Float32Array.from(slot.m.dataSync() as Float32Array) });
      if (slot.v) entries.push({ name: `opt/${i}/v`, shape: slot.v.shape, values: Float32Array.from(slot.v.dataSync() as Float32Array) });
    });
    return entries;
  }

  restore(steps: readonly number[], state: ReadonlyMap<string, { shape: number[]; values: Float32Array | Int32Array }>): void {
    steps.forEach((step, i) => {
      const slot = this.optimizer.slots[i];
      slot.step = step;
      for (const which of ['m', 'v'] as const) {
        const saved = state.get(`opt/${i}/${which}`);
        if (!saved) continue;
        slot[which]?.dispose();
        slot[which] = tf.tidy(() => tf.variable(tf.tensor(saved.values, saved.shape), false));
      }
    });
  }

  async dispose(): Promise<void> {
    this.optimizer.dispose();
    this.classWeights?.tensor.dispose();
  }
}
