/**
 * `salgrid predict`: class probabilities (or logits) of a model for the
 * user's own inputs, outside a sweep. The model is a tfjs model folder (with
 * or without a model card), a weights-store name, or a PyTorch state dict with
 * `--arch`; the inputs are a preprocessed `.npy` [n, h, w, 3] fed as it is, or
 * image files (folders: every image in them, sorted by name) preprocessed as
 * the model's card says.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import type * as TF from '@tensorflow/tfjs';
import { MissingInputError, UserError } from '../core/errors.ts';
import type { Params } from '../core/plugins/types.ts';
import type { NpyArray } from '../core/tensor/npy.ts';
import type { Normalisation, Preprocessing } from '../core/tensor/preprocess.ts';
import type { ModelCard, TfjsArchitecture } from '../core/tensor/tfjs-architecture.ts';
import { checkStoreName, storedWeightsDir, weightsStoreDir } from '../core/tensor/weights-store.ts';
import { addArchParamOptions, architectureFromOptions, cliRegistry, tfjsArchitecture, type ArchOptions } from './arch-params.ts';
import { parseBackend } from './context.ts';
import { print, textTable } from './output.ts';
import { parseClasses, parseInputSize } from './weights.ts';

interface PredictOptions extends ArchOptions {
  model: string;
  input: string[];
  out: string;
  logits?: boolean;
  batchSize?: string;
  backend?: string;
  quiet?: boolean;
  inputSize?: string;
  classes?: string;
}

type Inputs = { kind: 'npy'; file: string; array: NpyArray } | { kind: 'images'; files: string[] };

interface Model {
  model: TF.LayersModel;
  classes?: string[];
  /** How images become its input; undefined for a bare tfjs model without --arch. */
  preprocessing?: Preprocessing;
  /** Its last layer applies a softmax: it outputs probabilities, not logits. */
  softmaxOutput: boolean;
  name: string;
}

const DEFAULT_BATCH = 16;
const STATE_DICT = /\.(pth|pt|ckpt)$/i;

const isStateDict = (file: string) => STATE_DICT.test(file) || (/\.bin$/i.test(file) && path.basename(file) !== 'weights.bin');

function parseBatchSize(text: string | undefined): number {
  if (text === undefined) return DEFAULT_BATCH;
  const size = Number(text);
  if (!/^\d+$/.test(text.trim()) || size < 1) throw new UserError(`--batch-size takes a whole number ≥ 1, got "${text}".`);
  return size;
}

/** The --input paths as one .npy or a list of image files (folders expanded: their images, sorted by name). */
async function readInputs(paths: readonly string[]): Promise<Inputs> {
  const { IMAGE_EXTENSIONS, isImageFileName } = await import('../core/tensor/image-io.ts');
  const files: string[] = [];
  const arrays: string[] = [];
  for (const given of paths) {
    const full = path.resolve(given);
    if (!existsSync(full)) throw new MissingInputError(full, 'Input', 'check --input');
    if (statSync(full).isDirectory()) {
      const images = (await readdir(full, { withFileTypes: true })).filter((e) => e.isFile() && isImageFileName(e.name)).map((e) => e.name).sort();
      if (images.length === 0) throw new UserError(`--input folder ${full} holds no image files (${IMAGE_EXTENSIONS.join(', ')}); give image files, a folder of them, or a .npy array.`);
      files.push(...images.map((name) => path.join(full, name)));
    } else if (full.toLowerCase().endsWith('.npy')) {
      arrays.push(full);
    } else if (isImageFileName(path.basename(full))) {
      files.push(full);
    } else {
      throw new UserError(`--input ${full} is neither a .npy array nor an image file (${IMAGE_EXTENSIONS.join(', ')}); give one or the other.`);
    }
  }
  if (arrays.length > 0 && (arrays.length > 1 || files.length > 0)) {
    throw new UserError('--input takes one .npy array, or image files and folders, not both and not several arrays; predict them in separate runs.');
  }
  if (arrays.length === 1) {
    const { readNpy } = await import('../core/tensor/npy.ts');
    const array = await readNpy(arrays[0]);
    const { shape } = array;
    if (shape.length !== 4 || shape[3] !== 3 || shape[0] === 0) {
      throw new UserError(
        `${arrays[0]} holds an array of shape (${shape.join(', ')}), but predict feeds a .npy as the network's input: [n, height, width, 3] (NHWC, float32, already preprocessed)${shape.length === 3 && shape[2] === 3 ? '; add the batch axis with array[None]' : ''}.`,
      );
    }
    if (array.dtype !== 'float32' && array.dtype !== 'float64') {
      throw new UserError(`${arrays[0]} holds ${array.dtype} values, but the network's input is float32 after preprocessing; convert it with array.astype(numpy.float32) (and normalise it as the model expects), or give the image files instead.`);
    }
    return { kind: 'npy', file: arrays[0], array };
  }
  return { kind: 'images', files };
}

/** The model's [height, width], or undefined where its input size is not fixed. */
function modelInputSize(model: TF.LayersModel): [number, number] | undefined {
  const shape = model.inputs[0].shape;
  return typeof shape[1] === 'number' && typeof shape[2] === 'number' ? [shape[1], shape[2]] : undefined;
}

function endsInSoftmax(model: TF.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  return (last.getConfig() as { activation?: unknown }).activation === 'softmax' || last.getClassName() === 'Softmax';
}

/** Where the model comes from, checked before any tensor work: a state dict with its architecture, or a tfjs model folder. */
type ModelSource =
  | { kind: 'pth'; file: string; plugin: TfjsArchitecture; params: Params; inputSize?: [number, number]; classes?: string[] }
  | { kind: 'tfjs'; folder: string; card?: ModelCard; archNormalisation?: Normalisation };

const MODEL_HINT = 'give a model folder or its model.json, a name from salgrid weights list, or a .pth file with --arch';

async function locateModel(options: PredictOptions, inputs: Inputs): Promise<ModelSource> {
  const location = options.model;
  if (isStateDict(location)) {
    if (!options.arch) {
      throw new UserError(`--model ${location} is a PyTorch state dict, which does not say which network it belongs to; add --arch <id> (and --arch-param for a custom size), or import it once with salgrid weights import.`);
    }
    const inputSize = parseInputSize(options.inputSize);
    const classes = parseClasses(options.classes);
    const { plugin, params } = await architectureFromOptions(options.arch, options);
    const file = path.resolve(location);
    if (!existsSync(file)) throw new MissingInputError(file, 'PyTorch state dict', 'check --model');
    // The network is built for its input: --input-size, else the array's size, else 224 (the plugin's default).
    return { kind: 'pth', file, plugin, params, inputSize: inputSize ?? (inputs.kind === 'npy' ? [inputs.array.shape[1], inputs.array.shape[2]] : undefined), classes };
  }
  const onlyPth = (flag: string, why: string) => new UserError(`${flag} applies to a .pth --model only; ${location} is a tfjs model, ${why}.`);
  if ((options.archParam ?? []).length > 0) throw onlyPth('--arch-param', 'whose params are fixed');
  if (options.inputSize !== undefined) throw onlyPth('--input-size', 'whose input size is fixed');
  if (options.classes !== undefined) throw onlyPth('--classes', 'whose classes are fixed (named in its model card, if it has one)');
  const { modelFolder, readModelCard, MODEL_CARD } = await import('../core/tensor/tfjs-architecture.ts');
  let full = path.resolve(location);
  if (!existsSync(full) && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(location) && !location.endsWith('.json')) {
    // A weights-store name, such as mobilenet-v2-imagenet.
    full = storedWeightsDir(checkStoreName(location));
    if (!existsSync(full)) {
      throw new UserError(`--model ${location} is neither a file or folder here nor a name in the weights store ${weightsStoreDir()}; ${MODEL_HINT}.`);
    }
  }
  if (!existsSync(full)) throw new MissingInputError(full, 'Model', MODEL_HINT);
  const folder = modelFolder(full);
  const json = path.join(folder, 'model.json');
  if (!existsSync(json)) throw new MissingInputError(json, 'Model', MODEL_HINT);
  const card = await readModelCard(folder);
  if (card) {
    if (options.arch !== undefined && options.arch !== card.architecture.id) {
      throw new UserError(`--arch ${options.arch} contradicts ${path.join(folder, MODEL_CARD)}, which says the model is a ${card.architecture.id}; drop --arch.`);
    }
    return { kind: 'tfjs', folder, card };
  }
  let archNormalisation: Normalisation | undefined;
  if (options.arch !== undefined) archNormalisation = (await tfjsArchitecture(await cliRegistry(options.plugin ?? []), options.arch)).normalisation;
  else if (inputs.kind === 'images') {
    throw new UserError(
      `${folder} is a bare tfjs model (no ${MODEL_CARD}), so how images become its input is unknown; add --arch <id> to preprocess them as that architecture does (torchvision's: ImageNet normalisation) at the model's input size, or give a preprocessed .npy [n, height, width, 3] instead of images.`,
    );
  }
  return { kind: 'tfjs', folder, archNormalisation };
}

async function loadModel(source: ModelSource): Promise<Model> {
  if (source.kind === 'pth') {
    const { model, card } = await source.plugin.importPyTorch(source.file, source.params, { inputSize: source.inputSize, classes: source.classes });
    return { model, classes: card.classes, preprocessing: card.preprocessing, softmaxOutput: false, name: source.file };
  }
  const { loadLayersModel } = await import('../core/tensor/model-io.ts');
  const model = await loadLayersModel(source.folder);
  let preprocessing = source.card?.preprocessing;
  if (source.archNormalisation) {
    const size = modelInputSize(model);
    if (!size) {
      model.dispose();
      throw new UserError(`${source.folder} is a bare tfjs model with no fixed input size, so images cannot be prepared for it; give a preprocessed .npy [n, height, width, 3] instead.`);
    }
    preprocessing = { size, normalisation: source.archNormalisation };
  }
  return { model, classes: source.card?.classes, preprocessing, softmaxOutput: !source.card && endsInSoftmax(model), name: source.folder };
}

function checkInputShape(model: Model, inputs: Inputs): void {
  if (inputs.kind !== 'npy') return;
  const size = modelInputSize(model.model);
  const [n, h, w] = inputs.array.shape;
  if (size && (h !== size[0] || w !== size[1])) {
    throw new UserError(
      `${inputs.file} holds ${n} input(s) of ${h}×${w} pixels (shape (${inputs.array.shape.join(', ')})), but the model takes ${size[0]}×${size[1]}, i.e. [n, ${size[0]}, ${size[1]}, 3]; resize the inputs, or give the image files so that predict preprocesses them.`,
    );
  }
}

/** A path as the user would like to read it: relative to the working folder when it lies inside, else absolute. */
function shown(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

async function predict(options: PredictOptions): Promise<void> {
  const batchSize = parseBatchSize(options.batchSize);
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  const out = path.resolve(options.out);
  if (!out.toLowerCase().endsWith('.npy')) throw new UserError(`--out ${options.out} must be a .npy file path; predict writes one float32 array [inputs, classes].`);
  const inputs = await readInputs(options.input);
  const source = await locateModel(options, inputs);

  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(backendRequest);
  if (!options.quiet) print(tensors.describeBackend(backend));
  const tf = await import('@tensorflow/tfjs');
  const loaded = await loadModel(source);
  try {
    checkInputShape(loaded, inputs);
    if (options.logits && loaded.softmaxOutput) throw new UserError(`${loaded.name} ends in a softmax, so its logits are not available; drop --logits to get its probabilities.`);
    const count = inputs.kind === 'npy' ? inputs.array.shape[0] : inputs.files.length;
    const rows: { values: Float32Array; probabilities: Float32Array }[] = [];
    const run = (input: TF.Tensor4D) => {
      const [output, probabilities] = tf.tidy(() => {
        const y = loaded.model.predict(input) as TF.Tensor;
        if (y.rank !== 2) throw new UserError(`${loaded.name} outputs an array of shape [${y.shape.join(', ')}], not [inputs, classes]; predict needs a classifier.`);
        const p = loaded.softmaxOutput ? y : tf.softmax(y as TF.Tensor2D);
        return [options.logits ? y : p, p];
      });
      const classes = output.shape[1]!;
      const values = output.dataSync() as Float32Array;
      const probs = probabilities.dataSync() as Float32Array;
      output.dispose();
      probabilities.dispose();
      for (let r = 0; r < output.shape[0]; r++) rows.push({ values: values.slice(r * classes, (r + 1) * classes), probabilities: probs.slice(r * classes, (r + 1) * classes) });
    };
    if (inputs.kind === 'npy') {
      const [, h, w] = inputs.array.shape;
      const per = h * w * 3;
      const data = inputs.array.data instanceof Float32Array ? inputs.array.data : Float32Array.from(inputs.array.data);
      for (let start = 0; start < count; start += batchSize) {
        const n = Math.min(batchSize, count - start);
        const input = tf.tensor4d(data.subarray(start * per, (start + n) * per), [n, h, w, 3]);
        try {
          run(input);
        } finally {
          input.dispose();
        }
      }
    } else {
      const { ImageBatches } = await import('../core/tensor/image-batches.ts');
      await new ImageBatches(inputs.files, loaded.preprocessing!).forEachBatch(batchSize, (input) => run(input));
    }

    const classes = rows[0].values.length;
    const names = loaded.classes?.length === classes ? loaded.classes : Array.from({ length: classes }, (_, i) => String(i));
    const result = new Float32Array(count * classes);
    rows.forEach((row, i) => result.set(row.values, i * classes));
    const { writeNpy } = await import('../core/tensor/npy.ts');
    await writeNpy(out, { dtype: 'float32', shape: [count, classes], data: result });

    if (!options.quiet) {
      const label = (i: number) => (inputs.kind === 'npy' ? `${path.basename(inputs.file)}[${i}]` : shown(inputs.files[i]));
      const table = rows.map((row, i) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if (row.probabilities[c] > row.probabilities[best]) best = c;
        return [i, label(i), names[best], row.probabilities[best].toFixed(4)];
      });
      print(textTable(['row', 'input', 'predicted', 'probability'], table, false));
    }
    print(`wrote ${shown(out)}: ${options.logits ? 'logits' : 'probabilities'} [${count}, ${classes}] (float32; rows in the order above, columns ${names.length <= 8 ? names.join(', ') : `${names.slice(0, 4).join(', ')}, … ${names[names.length - 1]}`})`);
  } finally {
    loaded.model.dispose();
  }
}

export function registerPredict(program: Command): void {
  addArchParamOptions(
    program
      .command('predict')
      .description("class probabilities (or logits) of a model for your own inputs, outside a sweep: a preprocessed .npy [n, h, w, 3] fed as it is, or image files preprocessed as the model's card says")
      .requiredOption('--model <model>', 'a model folder or its model.json, a name from `salgrid weights list`, or a PyTorch .pth/.pt with --arch')
      .requiredOption('--input <paths...>', 'a .npy [n, h, w, 3] (NHWC float32, fed as it is), or image files and folders (every image in them, sorted by name)')
      .requiredOption('--out <file.npy>', 'where to write the float32 array [inputs, classes]')
      .option('--arch <id>', 'the architecture of a .pth model (or of a bare tfjs model, for its preprocessing)')
      .option('--logits', 'write the logits instead of the softmax probabilities')
      .option('--classes <names>', 'class names of a .pth model, comma-separated in output order')
      .option('--input-size <n>', 'input side in pixels for a .pth model and image inputs (default 224; a .npy sets it)')
      .option('--batch-size <n>', `inputs per forward pass (default ${DEFAULT_BATCH})`)
      .option('--backend <name>', 'tensor backend: auto, tensorflow, webgpu, wasm or cpu')
      .option('--quiet', 'print only where the array went, not the per-input predictions'),
  ).action(async (options: PredictOptions) => predict(options));
}
