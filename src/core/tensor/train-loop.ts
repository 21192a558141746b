/**
 * A resumable training loop for any tfjs LayersModel whose output is logits.
 *
 * PyTorch semantics throughout, because the study trained in PyTorch:
 * - SGD: weight decay is L2 added to the gradient (g += wd·w), then
 *   buf = momentum·buf + g, step = nesterov ? g + momentum·buf : buf, w -= lr·step.
 * - Adam: weight decay is likewise L2 added to the gradient (torch.optim.Adam,
 *   not AdamW); bias-corrected moments, w -= lr·m̂ / (√v̂ + ε), ε 1e-8 by
 *   default as in PyTorch (tfjs's is 1e-7); one step count
 *   per variable, so a head trained alone during freezeEpochs does not skew
 *   the bias correction of the body once it is unfrozen.
 * - Batch norm in training: batch statistics, running statistics updated with
 *   momentum 0.1 and the unbiased variance (pytorch-batch-norm.ts).
 * - StepLR stepped once per epoch: lr(epoch) = base · gamma^floor(epoch / stepSize).
 * - Class weights are inverse frequency (n / (classes · n_c), scikit-learn's
 *   "balanced"), and the weighted loss is Σ w·l / Σ w as in CrossEntropyLoss(weight).
 *
 * The steps are taken by a Trainer (trainer.ts): on the onnx engine by ONNX
 * Runtime sessions over flat weight vectors (onnx-trainer.ts), else by the
 * model's own tfjs variables (tfjs-trainer.ts). Both own their optimizer
 * state, so a resumed run is bit-identical to an uninterrupted one on the
 * same engine.
 *
 * Every random draw comes from a generator seeded by (seed, epoch, batch), never
 * a generator carried across batches, so a resumed epoch reproduces the draws
 * of the run it replaces: shuffles and augmentation here, dropout masks in
 * the trainer.
 *
 * Checkpoints: `checkpoints/epoch-NNNN.bin` (model weights, batch-norm moving
 * statistics included, plus optimizer state) and `checkpoints/best-epoch-NNNN.bin`,
 * each written atomically, then `checkpoint.json` written atomically last and
 * naming them; older files are deleted only after that. A kill at any instant
 * therefore leaves the previous complete checkpoint.
 */
import { readFile, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { mixSeed, seededRandom, shuffled } from '../random.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { saveLayersModel } from '../io/model-io.ts';
import { engineChoice, type EngineChoice } from './engine-choice.ts';
import { OnnxTrainer } from './onnx-trainer.ts';
import { augmentImages, type Augmentation } from './preprocess.ts';
import { TfjsTrainer } from './tfjs-trainer.ts';
import { headWeights, type ResolvedOptimizer, type Trainer } from './trainer.ts';

// ---------------------------------------------------------------- configuration

export type OptimizerConfig =
  | { sgd: { learningRate?: number; momentum?: number; nesterov?: boolean; weightDecay?: number } }
  | { adam: { learningRate?: number; beta1?: number; beta2?: number; epsilon?: number; weightDecay?: number } };

/** The manifest's `training` section, as far as the loop uses it. */
export interface TrainLoopConfig {
  epochs: number;
  batchSize: number;
  seed: number;
  optimizer: OptimizerConfig | Record<string, unknown>;
  schedule?: { stepLR?: { stepSize: number; gamma?: number } } | Record<string, unknown>;
  augment?: Augmentation | Record<string, unknown>;
  freezeEpochs?: number;
  classWeights?: boolean;
}

/** Images fetched on demand (from disk, say) instead of held as one tensor. */
export interface BatchProvider {
  /** Class index of each item; its length is the number of items. */
  labels: ArrayLike<number>;
  /** The images of the given items, in that order; the loop disposes the tensor. */
  load(indices: number[]): tf.Tensor4D | Promise<tf.Tensor4D>;
}

export type TrainData = { x: tf.Tensor4D; y: ArrayLike<number> | tf.Tensor1D } | BatchProvider;

export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  learningRate: number;
  trainLoss: number;
  trainAccuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** True for epochs that trained the last Dense layer alone. */
  frozen: boolean;
  seconds: number;
}

export interface TrainModelOptions {
  model: tf.LayersModel;
  train: TrainData;
  val?: TrainData;
  config: TrainLoopConfig;
  /** Staging folder; it survives a crash, and the loop resumes from the checkpoint inside it. */
  out: string;
  /** Atomic writer relative to `out` (TaskContext.writeFile); defaults to writing atomically into `out`. */
  writeFile?: (relativePath: string, data: string | Uint8Array) => Promise<void>;
  progress?: (done: number, total: number, note?: string) => void;
  signal?: AbortSignal;
  /** Overrides `config.augment`; null turns augmentation off. */
  augment?: Augmentation | null;
  /**
   * When given, the data yields images in [0, 1] and the loop normalises them
   * after augmenting, as torchvision pipelines do (a rotation then fills with
   * black, not with the mean colour). Without it the data is the network's
   * input and augmentation applies to it directly.
   */
  normalise?: (unit: tf.Tensor4D) => tf.Tensor4D;
  /** Called after each epoch's checkpoint is on disk. */
  onEpoch?: (record: EpochRecord) => void;
  /** Folder under `out` that receives the best model (default `best`). */
  bestDir?: string;
  /** Which engine takes the steps (default: the process's engine choice). */
  engine?: EngineChoice;
}

export interface TrainResult {
  history: EpochRecord[];
  /** 1-based epoch whose weights the model now holds and `best/` contains. */
  bestEpoch: number;
  bestValLoss: number | undefined;
  /** Epochs run in this call (0 when a finished checkpoint was found). */
  epochsRun: number;
  resumedFrom: number;
}

const CHECKPOINT_FILE = 'checkpoint.json';
const CHECKPOINT_DIR = 'checkpoints';
const FORMAT = 1;

// ---------------------------------------------------------------- seeds

/** Seeds of every random draw come from (seed, epoch, batch, purpose), so a resumed epoch draws exactly what it drew before. */
export const deriveSeed = mixSeed;

const PURPOSE = { shuffle: 1, augment: 2, layers: 3 } as const;

// ---------------------------------------------------------------- config parsing

function resolveOptimizer(config: TrainLoopConfig['optimizer']): ResolvedOptimizer {
  const record = config as Record<string, Record<string, unknown> | undefined>;
  const num = (v: unknown, fallback: number) => (typeof v === 'number' ? v : fallback);
  if (record.adam) {
    const a = record.adam;
    return { kind: 'adam', learningRate: num(a.learningRate, 0.001), momentum: 0, nesterov: false, beta1: num(a.beta1, 0.9), beta2: num(a.beta2, 0.999), epsilon: num(a.epsilon, 1e-8), weightDecay: num(a.weightDecay, 0) };
  }
  if (record.sgd) {
    const s = record.sgd;
    const result: ResolvedOptimizer = { kind: 'sgd', learningRate: num(s.learningRate, 0.001), momentum: num(s.momentum, 0.9), nesterov: s.nesterov === true, beta1: 0, beta2: 0, epsilon: 0, weightDecay: num(s.weightDecay, 0) };
    if (result.nesterov && result.momentum <= 0) throw new Error('Nesterov momentum needs momentum > 0 (as in torch.optim.SGD).');
    return result;
  }
  throw new Error(`Unknown optimizer ${JSON.stringify(config)}: expected { sgd: {...} } or { adam: {...} }.`);
}

/** torch.optim.lr_scheduler.StepLR stepped once per epoch; `epoch` is 0-based. */
export function stepLearningRate(base: number, epoch: number, schedule: TrainLoopConfig['schedule']): number {
  const step = (schedule as { stepLR?: { stepSize: number; gamma?: number } } | undefined)?.stepLR;
  if (!step) return base;
  return base * Math.pow(step.gamma ?? 0.1, Math.floor(epoch / step.stepSize));
}

function resolveAugmentation(options: TrainModelOptions): Augmentation | undefined {
  const chosen = options.augment === undefined ? (options.config.augment as Augmentation | undefined) : options.augment ?? undefined;
  if (!chosen) return undefined;
  const active = (chosen.rotate ?? 0) > 0 || (chosen.flip !== undefined && chosen.flip !== 'none');
  return active ? chosen : undefined;
}

// ---------------------------------------------------------------- data

interface Source {
  count: number;
  labels: Int32Array;
  load(indices: number[]): Promise<tf.Tensor4D>;
}

function toSource(data: TrainData): Source {
  if ('load' in data) {
    const labels = Int32Array.from(data.labels);
    return { count: labels.length, labels, load: async (indices) => data.load(indices) };
  }
  const labels = data.y instanceof tf.Tensor ? Int32Array.from(data.y.dataSync()) : Int32Array.from(data.y);
  if (labels.length !== data.x.shape[0]) throw new Error(`train data has ${data.x.shape[0]} images but ${labels.length} labels.`);
  const x = data.x;
  return { count: labels.length, labels, load: async (indices) => tf.tidy(() => tf.gather(x, tf.tensor1d(indices, 'int32'))) };
}

/** n / (classes · n_c); a class absent from training gets weight 0 (it cannot contribute anyway). */
export function inverseFrequencyWeights(labels: ArrayLike<number>, classes: number): number[] {
  const counts = new Array<number>(classes).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts.map((c) => (c === 0 ? 0 : labels.length / (classes * c)));
}

// ---------------------------------------------------------------- engines

/**
 * The trainer for the engine: ONNX Runtime where the process runs the onnx
 * engine (its sessions take the steps; the tfjs model is written at each
 * checkpoint), else the model's own tfjs variables.
 */
export function createTrainer(model: tf.LayersModel, optimizer: ResolvedOptimizer, engine: EngineChoice = engineChoice()): Trainer {
  return engine.engine === 'onnx' ? new OnnxTrainer(model, { device: engine.device, threads: engine.threads, optimizer }) : new TfjsTrainer(model, optimizer);
}

// ---------------------------------------------------------------- tensor files

interface TensorEntry {
  name: string;
  shape: number[];
  dtype: 'float32' | 'int32';
}

/** Self-describing tensor file: u32 header length, JSON header, zero padding to 4 bytes, raw values. */
function encodeTensors(entries: ReadonlyArray<{ name: string; values: Float32Array | Int32Array; shape: number[] }>): Uint8Array {
  const header: TensorEntry[] = entries.map((e) => ({ name: e.name, shape: e.shape, dtype: e.values instanceof Int32Array ? 'int32' : 'float32' }));
  const json = new TextEncoder().encode(JSON.stringify(header));
  const start = Math.ceil((4 + json.length) / 4) * 4;
  const total = start + entries.reduce((sum, e) => sum + e.values.byteLength, 0);
  const bytes = new Uint8Array(total);
  new DataView(bytes.buffer).setUint32(0, json.length, true);
  bytes.set(json, 4);
  let offset = start;
  for (const e of entries) {
    bytes.set(new Uint8Array(e.values.buffer, e.values.byteOffset, e.values.byteLength), offset);
    offset += e.values.byteLength;
  }
  return bytes;
}

function decodeTensors(bytes: Uint8Array, file: string): Map<string, { shape: number[]; values: Float32Array | Int32Array }> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(4, 4 + length))) as TensorEntry[];
  let offset = Math.ceil((4 + length) / 4) * 4;
  const result = new Map<string, { shape: number[]; values: Float32Array | Int32Array }>();
  for (const entry of header) {
    const size = entry.shape.reduce((p, n) => p * n, 1);
    const raw = bytes.slice(offset, offset + size * 4);
    if (raw.length !== size * 4) throw new Error(`Checkpoint ${file} is truncated at ${entry.name}; delete the task's staging folder to start over.`);
    result.set(entry.name, { shape: entry.shape, values: entry.dtype === 'int32' ? new Int32Array(raw.buffer) : new Float32Array(raw.buffer) });
    offset += size * 4;
  }
  return result;
}

function modelEntries(model: tf.LayersModel): { name: string; values: Float32Array | Int32Array; shape: number[] }[] {
  // By position, not name: tfjs uniquifies layer names per process, so a rebuilt model's names differ.
  return model.weights.map((w, i) => {
    const values = w.read().dataSync();
    return { name: `model/${i}`, shape: w.shape as number[], values: values instanceof Int32Array ? values : Float32Array.from(values as Float32Array) };
  });
}

function restoreModel(model: tf.LayersModel, tensors: Map<string, { shape: number[]; values: Float32Array | Int32Array }>, file: string): void {
  model.weights.forEach((w, i) => {
    const saved = tensors.get(`model/${i}`);
    if (!saved || saved.shape.join() !== w.shape.join()) {
      throw new Error(`Checkpoint ${file} does not fit this model (weight ${i}, ${w.name}); delete the task's staging folder to start over.`);
    }
    const value = tf.tensor(saved.values, saved.shape, w.dtype as 'float32' | 'int32');
    w.write(value);
    value.dispose();
  });
}

// ---------------------------------------------------------------- checkpoint manifest

interface CheckpointManifest {
  format: number;
  /** Settings that must match for a resume to reproduce the same run. */
  fingerprint: string;
  /** Epochs completed (1-based number of the last one). */
  epoch: number;
  state: string;
  best?: { epoch: number; valLoss: number | undefined; file: string };
  slots: { step: number }[];
  history: EpochRecord[];
}

function fingerprint(config: TrainLoopConfig, optimizer: ResolvedOptimizer, augmentation: Augmentation | undefined, model: tf.LayersModel, trainCount: number): string {
  return JSON.stringify({
    batchSize: config.batchSize,
    seed: config.seed,
    optimizer,
    schedule: config.schedule ?? null,
    augmentation: augmentation ?? null,
    freezeEpochs: config.freezeEpochs ?? 0,
    classWeights: config.classWeights ?? false,
    weights: model.weights.map((w) => w.shape),
    trainCount,
  });
}

async function readManifest(out: string): Promise<CheckpointManifest | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(out, CHECKPOINT_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as CheckpointManifest;
}

async function removeStale(out: string, keep: Set<string>): Promise<void> {
  let names: string[];
  try {
    names = await readdir(path.join(out, CHECKPOINT_DIR));
  } catch {
    return;
  }
  for (const name of names) {
    const relative = `${CHECKPOINT_DIR}/${name}`;
    if (!keep.has(relative) && name.endsWith('.bin')) await rm(path.join(out, relative), { force: true });
  }
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('Training aborted.');
}

/** Yields to the event loop so an abort raised by a signal handler is seen between batches. */
const yieldToEvents = () => new Promise<void>((resolve) => setImmediate(resolve));

// ---------------------------------------------------------------- a fixed number of steps

export interface TrainStepsOptions {
  model: tf.LayersModel;
  /** The network's inputs, preprocessed. */
  x: tf.Tensor4D;
  labels: Int32Array;
  steps: number;
  batchSize: number;
  optimizer: OptimizerConfig | Record<string, unknown>;
  /** Feed the inputs in a seeded random order each pass (true), or in their order. */
  shuffle: boolean;
  seed: number;
  /** After each step: its 1-based number and the mean loss of its batch before the update. */
  onStep?: (step: number, loss: number) => void;
  signal?: AbortSignal;
  /** Which engine takes the steps (default: the process's engine choice). */
  engine?: EngineChoice;
}

/**
 * `steps` optimizer steps on in-memory inputs, as a training script's inner
 * loop takes them: batches of `batchSize` through the inputs in order (or a
 * seeded shuffle per pass), the last batch of a pass smaller when the
 * inputs do not divide evenly, constant learning rate, no class weights.
 * Returns the loss before each step.
 */
export async function trainSteps(options: TrainStepsOptions): Promise<number[]> {
  const { model, x, labels, steps, signal } = options;
  const count = labels.length;
  if (x.shape[0] !== count) throw new Error(`${x.shape[0]} inputs but ${labels.length} labels`);
  const settings = resolveOptimizer(options.optimizer);
  const batchSize = Math.max(1, Math.min(options.batchSize, count));
  const perPass = Math.ceil(count / batchSize);
  const trainer = createTrainer(model, settings, options.engine);
  const losses: number[] = [];
  try {
    let order: number[] = [];
    for (let step = 0; step < steps; step++) {
      if (signal?.aborted) throw abortError(signal);
      const pass = Math.floor(step / perPass);
      const b = step % perPass;
      if (b === 0) {
        const all = Array.from({ length: count }, (_, i) => i);
        order = options.shuffle ? shuffled(all, seededRandom(deriveSeed(options.seed, pass, PURPOSE.shuffle))) : all;
      }
      const batch = order.slice(b * batchSize, (b + 1) * batchSize);
      const images = tf.tidy(() => tf.gather(x, tf.tensor1d(batch, 'int32')) as tf.Tensor4D);
      let measured;
      try {
        measured = await trainer.step(images, Int32Array.from(batch, (i) => labels[i]), { headOnly: false, learningRate: settings.learningRate, seed: deriveSeed(options.seed, pass, b, PURPOSE.layers) });
      } finally {
        images.dispose();
      }
      const loss = measured.weightedSum / measured.weightSum;
      losses.push(loss);
      options.onStep?.(step + 1, loss);
      await yieldToEvents();
    }
    trainer.syncModel();
    return losses;
  } finally {
    await trainer.dispose();
  }
}

// ---------------------------------------------------------------- the loop

export async function trainModel(options: TrainModelOptions): Promise<TrainResult> {
  const { model, config, out, signal } = options;
  const writeFile = options.writeFile ?? ((relative: string, data: string | Uint8Array) => writeFileAtomic(path.join(out, relative), data));
  const bestDir = options.bestDir ?? 'best';
  const settings = resolveOptimizer(config.optimizer);
  const augmentation = resolveAugmentation(options);
  const train = toSource(options.train);
  const val = options.val ? toSource(options.val) : undefined;
  const outputShape = model.outputs[0].shape;
  const classes = outputShape[outputShape.length - 1];
  if (typeof classes !== 'number') throw new Error('The model’s output has no fixed class dimension.');
  const freezeEpochs = config.freezeEpochs ?? 0;
  const batchSize = Math.max(1, config.batchSize);
  const key = fingerprint(config, settings, augmentation, model, train.count);
  if (freezeEpochs > 0 && headWeights(model).length === 0) throw new Error('freezeEpochs needs a Dense layer as the model’s head.');

  const trainer = createTrainer(model, settings, options.engine);
  const classWeights = config.classWeights ? inverseFrequencyWeights(train.labels, classes) : undefined;
  try {
    let history: EpochRecord[] = [];
    let best: CheckpointManifest['best'];
    let startEpoch = 0;

    const manifest = await readManifest(out);
    if (manifest) {
      if (manifest.format !== FORMAT || manifest.fingerprint !== key) {
        throw new Error(`The checkpoint in ${out} was made with other training settings or another model; delete that staging folder to start over.`);
      }
      const file = path.join(out, manifest.state);
      const tensors = decodeTensors(new Uint8Array(await readFile(file)), file);
      restoreModel(model, tensors, file);
      trainer.restore(manifest.slots.map((slot) => slot.step), tensors);
      history = manifest.history;
      best = manifest.best;
      startEpoch = manifest.epoch;
    }
    const resumedFrom = startEpoch;

    const batchesPerEpoch = Math.ceil(train.count / batchSize);
    for (let epoch = startEpoch; epoch < config.epochs; epoch++) {
      const started = performance.now();
      const frozen = epoch < freezeEpochs;
      const learningRate = stepLearningRate(settings.learningRate, epoch, config.schedule);
      const order = shuffled(
        Array.from({ length: train.count }, (_, i) => i),
        seededRandom(deriveSeed(config.seed, epoch, PURPOSE.shuffle)),
      );
      let lossSum = 0;
      let weightSum = 0;
      let correct = 0;
      for (let b = 0; b < batchesPerEpoch; b++) {
        if (signal?.aborted) throw abortError(signal);
        const batch = order.slice(b * batchSize, (b + 1) * batchSize);
        const images = await train.load(batch);
        const x = tf.tidy(() => {
          const augmented = augmentation ? augmentImages(images, augmentation, deriveSeed(config.seed, epoch, b, PURPOSE.augment)) : images;
          return options.normalise ? options.normalise(augmented) : augmented;
        });
        let measured;
        try {
          measured = await trainer.step(x, Int32Array.from(batch, (i) => train.labels[i]), {
            headOnly: frozen,
            learningRate,
            seed: deriveSeed(config.seed, epoch, b, PURPOSE.layers),
            ...(classWeights ? { classWeights } : {}),
          });
        } finally {
          if (x !== images) x.dispose();
          images.dispose();
        }
        lossSum += measured.weightedSum;
        weightSum += measured.weightSum;
        correct += measured.correct;
        options.progress?.(epoch * batchesPerEpoch + b + 1, config.epochs * batchesPerEpoch, `epoch ${epoch + 1}/${config.epochs}`);
        await yieldToEvents();
      }
      if (signal?.aborted) throw abortError(signal);

      const record: EpochRecord = {
        epoch: epoch + 1,
        learningRate,
        trainLoss: lossSum / weightSum,
        trainAccuracy: correct / train.count,
        frozen,
        seconds: 0,
      };
      if (val) {
        const evaluated = await evaluate(trainer, val, batchSize, classWeights, signal, options.normalise);
        record.valLoss = evaluated.loss;
        record.valAccuracy = evaluated.accuracy;
      }
      record.seconds = (performance.now() - started) / 1000;
      history = [...history, record];

      // Lowest validation loss wins, the earlier epoch on a tie; without validation data the last epoch is kept.
      const improved = !best || record.valLoss === undefined || best.valLoss === undefined || record.valLoss < best.valLoss;
      const pad = String(epoch + 1).padStart(4, '0');
      const state = `${CHECKPOINT_DIR}/epoch-${pad}.bin`;
      trainer.syncModel();
      const entries: { name: string; values: Float32Array | Int32Array; shape: number[] }[] = modelEntries(model);
      if (improved) {
        best = { epoch: epoch + 1, valLoss: record.valLoss, file: `${CHECKPOINT_DIR}/best-epoch-${pad}.bin` };
        await writeFile(best.file, encodeTensors(entries));
      }
      entries.push(...trainer.stateEntries());
      await writeFile(state, encodeTensors(entries));
      const next: CheckpointManifest = { format: FORMAT, fingerprint: key, epoch: epoch + 1, state, best, slots: trainer.slotSteps().map((step) => ({ step })), history };
      await writeFile(CHECKPOINT_FILE, JSON.stringify(next, null, 1));
      await removeStale(out, new Set([state, best!.file]));
      options.onEpoch?.(record);
      if (signal?.aborted) throw abortError(signal);
    }

    if (!best) throw new Error('No epoch was trained (epochs must be at least 1).');
    const bestFile = path.join(out, best.file);
    restoreModel(model, decodeTensors(new Uint8Array(await readFile(bestFile)), bestFile), bestFile);
    await saveLayersModel(model, path.join(out, bestDir));
    await writeFile('history.json', JSON.stringify(history, null, 1));
    return { history, bestEpoch: best.epoch, bestValLoss: best.valLoss, epochsRun: Math.max(0, config.epochs - resumedFrom), resumedFrom };
  } finally {
    await trainer.dispose();
  }
}

async function evaluate(
  trainer: Trainer,
  data: Source,
  batchSize: number,
  classWeights: readonly number[] | undefined,
  signal: AbortSignal | undefined,
  normalise: TrainModelOptions['normalise'],
): Promise<{ loss: number; accuracy: number }> {
  let lossSum = 0;
  let weightSum = 0;
  let correct = 0;
  for (let start = 0; start < data.count; start += batchSize) {
    if (signal?.aborted) throw abortError(signal);
    const batch = Array.from({ length: Math.min(batchSize, data.count - start) }, (_, i) => start + i);
    const images = await data.load(batch);
    const x = normalise ? tf.tidy(() => normalise(images)) : images;
    try {
      const measured = await trainer.evaluate(x, Int32Array.from(batch, (i) => data.labels[i]), classWeights);
      lossSum += measured.weightedSum;
      weightSum += measured.weightSum;
      correct += measured.correct;
    } finally {
      if (x !== images) x.dispose();
      images.dispose();
    }
  }
  return { loss: lossSum / weightSum, accuracy: correct / data.count };
}
