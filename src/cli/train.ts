/**
 * `salgrid train`: fine-tunes a model on the user's own arrays or images,
 * outside a sweep, the way `predict` and `explain` run one: `--model` as for
 * predict (a store name, a model folder, a .pth with --arch), inputs as a
 * preprocessed `.npy` [n, h, w, 3] or image files, class indices from an
 * int64 or int32 `.npy`, a fixed number of optimizer steps (or passes over
 * the inputs), and the result as a PyTorch state dict (`--out x.pth`) or a
 * model folder.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type * as TF from '@tensorflow/tfjs';
import { parse as parseYaml } from 'yaml';
import { MissingInputError, UserError } from '../core/errors.ts';
import { shownPath } from '../core/shown-path.ts';
import { addArchParamOptions } from './arch-params.ts';
import { BACKEND_HELP, parseBackend, parseThreadsHere } from './context.ts';
import { checkInputShape, forEachInputBatch, inputCount, loadModel, locateModel, parseBatchSize, readInputs, tfjsModelOf, type Inputs, type Model, type ModelOptions } from './model-inputs.ts';
import { print } from './output.ts';
import { formatParams, publishFolder } from './weights.ts';

interface TrainOptions extends ModelOptions {
  input: string[];
  labels: string;
  steps?: string;
  epochs?: string;
  batchSize?: string;
  optimizer?: string;
  shuffle: boolean;
  dropout?: string;
  seed?: string;
  backend?: string;
  threads?: string;
  out: string;
  quiet?: boolean;
}

const DEFAULT_TRAIN_BATCH = 16;
const DEFAULT_OPTIMIZER = '{ sgd: { learningRate: 0.001, momentum: 0.9 } }';

function wholeNumber(flag: string, text: string, minimum: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || value < minimum) throw new UserError(`${flag} takes a whole number ≥ ${minimum}, got "${text}".`);
  return value;
}

/** `--optimizer '<yaml>'`: the manifest's `training.optimizer`, checked against its schema (defaults filled in). */
async function parseOptimizer(text: string | undefined): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = parseYaml(text ?? DEFAULT_OPTIMIZER);
  } catch (error) {
    throw new UserError(`--optimizer is not valid YAML (${(error as Error).message.split('\n')[0]}); write it as in a manifest, e.g. '{ adam: { learningRate: 0.001 } }'.`);
  }
  const { createAjv, problemsFromAjv } = await import('../core/manifest/ajv.ts');
  const { OPTIMIZER_SCHEMA } = await import('../core/manifest/schema.ts');
  const validate = createAjv().compile(OPTIMIZER_SCHEMA);
  if (!validate(value)) {
    const problem = problemsFromAjv(validate.errors)[0];
    const where = problem.pointer === '' ? '--optimizer' : `--optimizer ${problem.pointer.slice(1).replaceAll('/', '.')}`;
    throw new UserError(`${where}: ${problem.message} (--optimizer takes the YAML of training.optimizer, e.g. '{ sgd: { learningRate: 0.01, momentum: 0.9 } }').`);
  }
  return value as Record<string, unknown>;
}

/** Class indices from an int64 or int32 `.npy` of one value per input. */
async function readLabels(file: string, count: number, classes: number): Promise<Int32Array> {
  const full = path.resolve(file);
  if (!existsSync(full)) throw new MissingInputError(full, 'Labels file', 'give an int64 or int32 .npy of class indices, one per input');
  const { readNpy } = await import('../core/io/npy.ts');
  const array = await readNpy(full);
  if (array.dtype !== 'int64' && array.dtype !== 'int32') throw new UserError(`${file} holds ${array.dtype} values; --labels takes class indices as an int64 or int32 .npy (numpy.save(path, labels.astype(numpy.int64))).`);
  if (array.shape.length !== 1 || array.shape[0] !== count) throw new UserError(`${file} has shape (${array.shape.join(', ')}), but the inputs are ${count}: --labels needs one class index per input, shape (${count},).`);
  const labels = Int32Array.from(array.data as ArrayLike<number>);
  const bad = labels.findIndex((label) => label < 0 || label >= classes);
  if (bad >= 0) throw new UserError(`${file} gives input ${bad} the class ${labels[bad]}, but the model has ${classes} classes (0 to ${classes - 1}).`);
  return labels;
}

/** The inputs as one tensor, preprocessed as predict feeds them. */
async function inputTensor(model: Model, inputs: Inputs): Promise<TF.Tensor4D> {
  const tf = await import('@tensorflow/tfjs');
  const batches: TF.Tensor4D[] = [];
  await forEachInputBatch(model, inputs, 64, (batch) => void batches.push(tf.clone(batch)));
  const x = tf.concat(batches, 0) as TF.Tensor4D;
  tf.dispose(batches);
  return x;
}

async function train(options: TrainOptions): Promise<void> {
  if ((options.steps === undefined) === (options.epochs === undefined)) throw new UserError('salgrid train needs exactly one of --steps K (optimizer steps) and --epochs E (passes over the inputs).');
  const batchSize = parseBatchSize(options.batchSize, DEFAULT_TRAIN_BATCH);
  const seed = options.seed === undefined ? 1 : wholeNumber('--seed', options.seed, 0);
  const dropout = options.dropout === undefined ? undefined : Number(options.dropout);
  if (dropout !== undefined && !(dropout >= 0 && dropout < 1)) throw new UserError(`--dropout takes a rate from 0 (no dropout) up to but not including 1, got "${options.dropout}".`);
  const optimizer = await parseOptimizer(options.optimizer);
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  const out = path.resolve(options.out);
  const toPth = /\.(pth|pt)$/i.test(out);
  if (!existsSync(path.dirname(out))) throw new MissingInputError(path.dirname(out), 'Output folder', 'create it first, or write elsewhere');

  const inputs = await readInputs(options.input, 'predict');
  const source = await locateModel(options, inputs, 'predict');
  if (source.kind === 'onnx') {
    throw new UserError(`--model ${options.model} is an ONNX graph; salgrid train fine-tunes the models salgrid builds (a model folder, a store name, or a .pth with --arch), so train this one where it was made and explain it with --model.`);
  }
  if (toPth && source.kind === 'tfjs' && !source.card) {
    throw new UserError(`${options.model} is a bare tfjs model (no model card), so it has no torchvision state dict keys; write --out to a folder instead of a .pth.`);
  }
  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(backendRequest, { threads: parseThreadsHere(options.threads) });
  if (!options.quiet) print(tensors.describeBackend(backend));
  const loadedModel = await loadModel(source);
  const loaded = { ...loadedModel, model: tfjsModelOf(loadedModel, 'salgrid train') };
  let x: TF.Tensor4D | undefined;
  try {
    checkInputShape(loaded, inputs, 'predict');
    if (loaded.softmaxOutput) throw new UserError(`${loaded.name} ends in a softmax; salgrid trains on logits (cross-entropy), so give a model whose last layer outputs logits.`);
    const count = inputCount(inputs);
    const outputShape = loaded.model.outputs[0].shape;
    const classes = outputShape[outputShape.length - 1] as number;
    const labels = await readLabels(options.labels, count, classes);
    const steps = options.steps !== undefined ? wholeNumber('--steps', options.steps, 1) : wholeNumber('--epochs', options.epochs!, 1) * Math.ceil(count / Math.min(batchSize, count));
    if (dropout !== undefined) {
      for (const layer of loaded.model.layers) if (layer.getClassName() === 'Dropout') (layer as unknown as { rate: number }).rate = dropout;
    }
    const { batchesTrackedOf } = await import('../core/tensor/tfjs-architecture.ts');
    const before = batchesTrackedOf(loaded.card);
    x = await inputTensor(loaded, inputs);
    const { trainSteps } = await import('../core/tensor/train-loop.ts');
    const width = String(steps).length;
    const losses = await trainSteps({
      model: loaded.model,
      x,
      labels,
      steps,
      batchSize,
      optimizer,
      shuffle: options.shuffle,
      seed,
      onStep: (step, loss) => {
        if (!options.quiet) print(`step ${String(step).padStart(width)}/${steps}  loss ${loss.toFixed(6)}`);
      },
    });
    const tracked = before + steps;
    const what = loaded.card ? `${loaded.card.architecture.id} (${formatParams(loaded.card.architecture.params)})` : 'bare tfjs model';
    if (toPth) {
      const { exportTorchWeights } = await import('../core/tensor/torch-weights.ts');
      const { writeStateDict } = await import('../core/io/pytorch-state-dict-write.ts');
      await writeStateDict(out, exportTorchWeights(loaded.model, { numBatchesTracked: tracked }));
      print(`trained ${what} for ${steps} step${steps === 1 ? '' : 's'} (loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}); wrote ${shownPath(out)}: a torchvision state dict`);
    } else {
      const origin = { fineTuned: { from: loaded.name, steps, batchSize, optimizer, shuffle: options.shuffle, seed }, batchesTracked: tracked };
      await publishFolder(out, async (staging) => {
        if (loaded.card) {
          const { saveModelWithCard } = await import('../core/tensor/tfjs-architecture.ts');
          await saveModelWithCard(loaded.model, { ...loaded.card, origin }, staging);
        } else {
          const { saveLayersModel } = await import('../core/io/model-io.ts');
          await saveLayersModel(loaded.model, staging);
        }
      });
      print(`trained ${what} for ${steps} step${steps === 1 ? '' : 's'} (loss ${losses[0].toFixed(4)} → ${losses[losses.length - 1].toFixed(4)}); wrote the model folder ${shownPath(out)}`);
    }
  } finally {
    x?.dispose();
    loaded.model.dispose();
  }
}

export function registerTrain(program: Command): void {
  addArchParamOptions(
    program
      .command('train')
      .description('fine-tune a model on your own inputs and labels, outside a sweep; writes a PyTorch state dict (.pth) or a model folder')
      .requiredOption('--model <model>', 'a model folder or its model.json, a name from `salgrid weights list`, or a PyTorch .pth/.pt with --arch')
      .requiredOption('--input <paths...>', 'a .npy [n, h, w, 3] (NHWC float32, fed as it is), or image files and folders (every image in them, sorted by name)')
      .requiredOption('--labels <y.npy>', 'class indices, one per input: an int64 or int32 .npy of shape (n,)')
      .requiredOption('--out <file.pth | folder>', 'a .pth/.pt gets a torchvision state dict; anything else a model folder')
      .option('--steps <k>', 'optimizer steps to take')
      .option('--epochs <e>', 'passes over the inputs (instead of --steps)')
      .option('--batch-size <n>', `inputs per step (default ${DEFAULT_TRAIN_BATCH}; the last batch of a pass may be smaller)`)
      .option('--optimizer <yaml>', `the optimizer, as training.optimizer in a manifest (default '${DEFAULT_OPTIMIZER}')`)
      .option('--no-shuffle', 'feed the inputs in their order (default: a seeded shuffle per pass)')
      .option('--dropout <p>', 'set every dropout layer’s rate (0 turns dropout off)')
      .option('--seed <n>', 'seed of the shuffles and dropout masks (default 1)')
      .option('--arch <id>', 'the architecture of a .pth model (or of a bare tfjs model, for its preprocessing)')
      .option('--classes <names>', 'class names of a .pth model, comma-separated in output order')
      .option('--input-size <n>', 'input side in pixels for a .pth model and image inputs (default 224; a .npy sets it)')
      .option('--backend <name>', BACKEND_HELP)
      .option('--threads <n>', 'intra-op threads of the onnx engine (default: every core)')
      .option('--quiet', 'print only the result, not the loss of every step'),
  ).action(async (options: TrainOptions) => train(options));
}
