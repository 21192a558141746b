/**
 * Training on ONNX Runtime: the host side of onnx/training-graph.ts. It holds
 * the flat vectors a training graph reads and writes — the trainable
 * weights, the batch norms' running statistics, the optimizer's state — and
 * feeds each step's outputs to the next, so a step is one session call. The
 * tfjs model is written only when asked (syncModel: a checkpoint, the end),
 * and read back after a restore.
 *
 * Sessions are compiled once per (graph kind, batch size, groups): an epoch
 * whose last batch is smaller gets a second session for it, kept for the
 * next epoch.
 */
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../random.ts';
import type { OnnxDevice } from './engine-choice.ts';
import { hostOf } from './onnx-engine.ts';
import { ParameterLayout, buildTrainingGraph, type ParameterGroup, type ParameterSlot, type TrainingGraph } from './onnx/training-graph.ts';
import { OnnxSession, type HostTensor, type SessionInput } from './onnx/session.ts';
import { inversePermutation, permute } from './permutation.ts';
import { headWeights, type BatchStatistics, type ResolvedOptimizer, type StateEntry, type StepOptions, type Trainer } from './trainer.ts';

export interface OnnxTrainerOptions {
  readonly device: OnnxDevice;
  readonly threads: number;
  readonly optimizer: ResolvedOptimizer;
}

interface Compiled {
  readonly graph: TrainingGraph;
  readonly session: OnnxSession;
  /** Slot indices per group, in group order. */
  readonly groupSlots: number[][];
}

/** Every BatchNormalization layer's moving statistics, nested models included, in layer order. */
function runningStatistics(model: tf.LayersModel): tf.LayerVariable[] {
  const found: tf.LayerVariable[] = [];
  const visit = (layers: readonly tf.layers.Layer[]) => {
    for (const layer of layers) {
      const nested = (layer as unknown as { layers?: tf.layers.Layer[] }).layers;
      if (nested) visit(nested);
      if (layer.getClassName() !== 'BatchNormalization') continue;
      const { movingMean, movingVariance } = layer as unknown as { movingMean: tf.LayerVariable; movingVariance: tf.LayerVariable };
      found.push(movingMean, movingVariance);
    }
  };
  visit(model.layers);
  return found;
}

function readInto(target: Float32Array, layout: ParameterLayout): void {
  for (const slot of layout.slots) target.set(slot.variable.read().dataSync() as Float32Array, slot.offset);
}

/** Σ w·(logsumexp − logit of the label), Σ w and the number of argmax hits, in double precision. */
function batchStatistics(logits: Float32Array, labels: Int32Array, classes: number, classWeights?: ArrayLike<number>): BatchStatistics {
  let weightedSum = 0;
  let weightSum = 0;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    const row = logits.subarray(i * classes, (i + 1) * classes);
    let max = -Infinity;
    let best = 0;
    row.forEach((value, c) => {
      if (value > max) {
        max = value;
        best = c;
      }
    });
    let total = 0;
    for (const value of row) total += Math.exp(value - max);
    const weight = classWeights ? classWeights[labels[i]] : 1;
    weightedSum += weight * (max + Math.log(total) - row[labels[i]]);
    weightSum += weight;
    if (best === labels[i]) correct++;
  }
  return { weightedSum, weightSum, correct };
}

export class OnnxTrainer implements Trainer {
  readonly engine = 'onnx';
  readonly parameters: ParameterLayout;
  readonly statistics: ParameterLayout;
  /** The weights, each in the layout the graphs read it in once a graph is built (tfjs's before). */
  readonly params: Float32Array;
  readonly stats: Float32Array;
  /** Momentum buffer (SGD with momentum) or first moment (Adam), laid out as `params`. */
  readonly m?: Float32Array;
  /** Second moment (Adam). */
  readonly v?: Float32Array;
  /** Optimizer steps taken by each parameter slot. */
  readonly steps: number[];
  readonly classes: number;
  /** The index in `model.trainableWeights` of each parameter slot. */
  private readonly trainableIndex: number[];
  private readonly headStart: number;
  private readonly sessions = new Map<string, Promise<Compiled>>();
  /** How the vectors hold each weight the graphs read permuted (see training-graph.ts); unset until the first graph is built. */
  private layouts?: ReadonlyMap<ParameterSlot, readonly number[]>;

  constructor(
    readonly model: tf.LayersModel,
    readonly options: OnnxTrainerOptions,
  ) {
    // The head (trained alone during freezeEpochs) lies last, so that each group is one run of the vector.
    const head = new Set(headWeights(model));
    const trainable = model.trainableWeights;
    const ordered = [...trainable.filter((w) => !head.has(w)), ...trainable.filter((w) => head.has(w))];
    this.parameters = new ParameterLayout(ordered);
    this.trainableIndex = ordered.map((w) => trainable.indexOf(w));
    this.headStart = this.parameters.slots.find((slot) => head.has(slot.variable))?.offset ?? this.parameters.size;
    this.statistics = new ParameterLayout(runningStatistics(model));
    this.params = new Float32Array(this.parameters.size);
    this.stats = new Float32Array(this.statistics.size);
    const { optimizer } = options;
    if (optimizer.kind === 'adam' || optimizer.momentum > 0) this.m = new Float32Array(this.parameters.size);
    if (optimizer.kind === 'adam') this.v = new Float32Array(this.parameters.size);
    this.steps = this.parameters.slots.map(() => 0);
    const shape = model.outputs[0].shape;
    this.classes = shape[shape.length - 1] as number;
    this.readFromModel();
  }

  /** A weight's values (tfjs's layout) as the vectors hold them: permuted once the graphs have said how they read it. */
  private toVector(slot: ParameterSlot, values: Float32Array): Float32Array {
    const perm = this.layouts?.get(slot);
    return perm ? permute(values, slot.variable.shape as number[], perm) : values;
  }

  /** A weight's part of a vector in tfjs's layout. */
  private fromVector(slot: ParameterSlot, vector: Float32Array): Float32Array {
    const values = vector.slice(slot.offset, slot.offset + slot.size);
    const perm = this.layouts?.get(slot);
    return perm ? permute(values, perm.map((axis) => slot.variable.shape[axis] as number), inversePermutation(perm)) : values;
  }

  /**
   * Adopts the layouts the first graph reads the weights in: the weights and
   * the optimizer's state are permuted once, here, instead of in every step.
   */
  private adoptLayouts(layouts: ReadonlyMap<ParameterSlot, readonly number[]>): void {
    if (this.layouts) {
      for (const [slot, perm] of layouts) {
        if (this.layouts.get(slot)?.join() !== perm.join()) throw new Error(`training graph: weight ${slot.variable.name} is read in another layout than before`);
      }
      return;
    }
    this.layouts = layouts;
    for (const slot of layouts.keys()) {
      for (const vector of [this.params, this.m, this.v]) {
        if (vector) vector.set(this.toVector(slot, vector.subarray(slot.offset, slot.offset + slot.size)), slot.offset);
      }
    }
  }

  /** Takes the model's current weights and running statistics. */
  private readFromModel(): void {
    for (const slot of this.parameters.slots) this.params.set(this.toVector(slot, slot.variable.read().dataSync() as Float32Array), slot.offset);
    readInto(this.stats, this.statistics);
  }

  /** Writes the weights and running statistics into the tfjs model. */
  syncModel(): void {
    const write = (slot: ParameterSlot, values: Float32Array) => {
      const value = tf.tensor(values, slot.variable.shape as number[]);
      slot.variable.write(value);
      value.dispose();
    };
    for (const slot of this.parameters.slots) write(slot, this.fromVector(slot, this.params));
    for (const slot of this.statistics.slots) write(slot, this.stats.slice(slot.offset, slot.offset + slot.size));
  }

  private groups(headOnly: boolean): ParameterGroup[] {
    if (headOnly) {
      if (this.headStart === this.parameters.size) throw new Error('freezeEpochs needs a head to train alone');
      return [{ start: this.headStart, end: this.parameters.size }];
    }
    return this.headStart > 0 && this.headStart < this.parameters.size
      ? [{ start: 0, end: this.headStart }, { start: this.headStart, end: this.parameters.size }]
      : [{ start: 0, end: this.parameters.size }];
  }

  private compiled(mode: 'train' | 'eval', batch: number, groups: ParameterGroup[]): Promise<Compiled> {
    const key = `${mode}|${batch}|${groups.map((g) => `${g.start}-${g.end}`).join(',')}`;
    let found = this.sessions.get(key);
    if (!found) {
      found = (async () => {
        const graph = buildTrainingGraph(this.model, {
          batch,
          parameters: this.parameters,
          statistics: this.statistics,
          mode,
          groups,
          optimizer: this.options.optimizer,
          device: this.options.device,
        });
        this.adoptLayouts(graph.weightLayouts);
        const session = await OnnxSession.fromGraph(graph.graph, { device: this.options.device, threads: this.options.threads, memoryPattern: false });
        const groupSlots = groups.map((group) => this.parameters.slots.flatMap((slot, i) => (slot.offset >= group.start && slot.offset < group.end ? [i] : [])));
        return { graph, session, groupSlots };
      })();
      found.catch(() => this.sessions.delete(key));
      this.sessions.set(key, found);
    }
    return found;
  }

  private imageInput(x: Float32Array, batch: number): HostTensor {
    const shape = this.model.inputs[0].shape.slice(1) as number[];
    if (x.length !== batch * shape.reduce((a, b) => a * b, 1)) throw new Error(`training step: ${x.length} input values for ${batch} images of [${shape.join(', ')}]`);
    return { data: x, shape: [batch, ...shape] };
  }

  async step(x: tf.Tensor4D, labels: Int32Array, options: StepOptions): Promise<BatchStatistics> {
    const batch = labels.length;
    const groups = this.groups(options.headOnly);
    const { graph, session, groupSlots } = await this.compiled('train', batch, groups);
    const { optimizer } = this.options;
    const weights = Array.from(labels, (label) => (options.classWeights ? options.classWeights[label] : 1));
    const weightSum = weights.reduce((sum, weight) => sum + weight, 0);
    const targets = new Float32Array(batch * this.classes);
    labels.forEach((label, i) => {
      targets[i * this.classes + label] = weightSum > 0 ? weights[i] / weightSum : 0;
    });
    const feeds: Record<string, SessionInput> = {
      [graph.input]: this.imageInput(hostOf(x), batch),
      [graph.params]: { data: this.params, shape: [this.params.length] },
      [graph.stats]: { data: this.stats, shape: [this.stats.length] },
      [graph.weightedTargets as string]: { data: targets, shape: [batch, this.classes] },
    };
    const random = seededRandom(options.seed);
    for (const mask of graph.dropoutMasks) {
      const keep = 1 / (1 - mask.rate);
      const size = mask.shape.reduce((a, b) => a * b, 1);
      feeds[mask.name] = { data: Float32Array.from({ length: size }, () => (random() < mask.rate ? 0 : keep)), shape: mask.shape };
    }
    groups.forEach((group, g) => {
      const inputs = graph.groupInputs[g];
      const steps = groupSlots[g].map((slot) => this.steps[slot] + 1);
      if (steps.some((step) => step !== steps[0])) throw new Error('training step: a group holds weights at different optimizer steps');
      const t = steps[0];
      const scalar = (value: number): HostTensor => ({ data: Float32Array.of(value), shape: [] });
      if (optimizer.kind === 'adam') {
        feeds[inputs.stepSize as string] = scalar(options.learningRate / (1 - Math.pow(optimizer.beta1, t)));
        feeds[inputs.correction as string] = scalar(Math.sqrt(1 - Math.pow(optimizer.beta2, t)));
      } else {
        feeds[inputs.stepSize as string] = scalar(options.learningRate);
      }
      if (inputs.m) feeds[inputs.m] = { data: (this.m as Float32Array).subarray(group.start, group.end), shape: [group.end - group.start] };
      if (inputs.v) feeds[inputs.v] = { data: (this.v as Float32Array).subarray(group.start, group.end), shape: [group.end - group.start] };
    });
    const names = [graph.logits, ...(graph.statsOut ? [graph.statsOut] : []), ...graph.groupOutputs.flatMap((out) => [out.params, out.m, out.v].filter((v): v is string => v !== undefined))];
    const results = await session.run(feeds, names);
    const logits = results[0].data;
    let next = 1;
    if (graph.statsOut) this.stats.set(results[next++].data);
    groups.forEach((group, g) => {
      const out = graph.groupOutputs[g];
      this.params.set(results[next++].data, group.start);
      if (out.m) (this.m as Float32Array).set(results[next++].data, group.start);
      if (out.v) (this.v as Float32Array).set(results[next++].data, group.start);
      for (const slot of groupSlots[g]) this.steps[slot]++;
    });
    return batchStatistics(logits, labels, this.classes, options.classWeights);
  }

  async evaluate(x: tf.Tensor4D, labels: Int32Array, classWeights?: readonly number[]): Promise<BatchStatistics> {
    const batch = labels.length;
    const { graph, session } = await this.compiled('eval', batch, []);
    const [logits] = await session.run({
      [graph.input]: this.imageInput(hostOf(x), batch),
      [graph.params]: { data: this.params, shape: [this.params.length] },
      [graph.stats]: { data: this.stats, shape: [this.stats.length] },
    }, [graph.logits]);
    return batchStatistics(logits.data, labels, this.classes, classWeights);
  }

  slotSteps(): number[] {
    const steps = this.model.trainableWeights.map(() => 0);
    this.trainableIndex.forEach((index, slot) => {
      steps[index] = this.steps[slot];
    });
    return steps;
  }

  stateEntries(): StateEntry[] {
    const indices = this.trainableIndex;
    return this.parameters.slots.flatMap((slot, i) => {
      const shape = [...slot.variable.shape] as number[];
      const part = (vector: Float32Array | undefined, which: string): StateEntry[] => (vector ? [{ name: `opt/${indices[i]}/${which}`, shape, values: this.fromVector(slot, vector) }] : []);
      return [...part(this.m, 'm'), ...part(this.v, 'v')];
    });
  }

  restore(steps: readonly number[], state: ReadonlyMap<string, { shape: number[]; values: Float32Array | Int32Array }>): void {
    this.readFromModel();
    const indices = this.trainableIndex;
    this.parameters.slots.forEach((slot, i) => {
      this.steps[i] = steps[indices[i]] ?? 0;
      for (const [which, vector] of [['m', this.m], ['v', this.v]] as const) {
        if (!vector) continue;
        const saved = state.get(`opt/${indices[i]}/${which}`);
        if (saved) vector.set(this.toVector(slot, saved.values as Float32Array), slot.offset);
        else vector.fill(0, slot.offset, slot.offset + slot.size);
      }
    });
  }

  async dispose(): Promise<void> {
    const pending = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(pending.map((p) => p.then((compiled) => compiled.session.release(), () => {})));
  }
}
