/**
 * What `salgrid predict` and `salgrid explain` share: where the model comes
 * from (a tfjs model folder with or without a model card, a weights-store
 * name, or a PyTorch state dict with `--arch`), the inputs (one preprocessed
 * `.npy` [n, h, w, 3] fed as it is, or image files and folders preprocessed
 * as the model's card says), loading the model — as a plain layers-model for
 * prediction or as a LoadedModel for explainers — and feeding the inputs to
 * it batch by batch.
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type * as TF from '@tensorflow/tfjs';
import { MissingInputError, UserError } from '../core/errors.ts';
import { shownPath } from '../core/shown-path.ts';
import type { LoadedModel, Params } from '../core/plugins/types.ts';
import type { NpyArray } from '../core/io/npy.ts';
import type { Normalisation, Preprocessing } from '../core/tensor/preprocess.ts';
import { isStateDictFile } from '../core/io/pytorch-state-dict.ts';
import type { ModelCard, TfjsArchitecture } from '../core/tensor/tfjs-architecture.ts';
import type { OnnxArchitecture } from '../core/tensor/onnx-architecture.ts';
import type { ImportedOnnxModel } from '../core/tensor/onnx/imported-model.ts';
import { checkStoreName, storedWeightsDir, weightsStoreDir } from '../core/tensor/weights-store.ts';
import { archParams, architectureFromOptions, cliRegistry, tfjsArchitecture, type ArchOptions } from './arch-params.ts';
import { parseClasses, parseInputSize } from './weights.ts';

/** The model flags `predict` and `explain` share (besides --arch-param / --plugin, in ArchOptions). */
export interface ModelOptions extends ArchOptions {
  model: string;
  inputSize?: string;
  classes?: string;
}

/** The command the inputs and model are for; it names what happens to them in errors. */
export type Use = 'predict' | 'explain' | 'score';

export type Inputs = { kind: 'npy'; file: string; array: NpyArray } | { kind: 'images'; files: string[] };

/** A loaded model with what the CLI needs to feed and read it. */
export interface Model {
  /** The tfjs layers-model; absent for an ONNX file, which `graph` holds. */
  model?: TF.LayersModel;
  /** An ONNX file's model, with its card and architecture. */
  graph?: { model: ImportedOnnxModel; card: ModelCard; plugin: OnnxArchitecture };
  classes?: string[];
  /** How images become its input; undefined for a bare tfjs model without --arch. */
  preprocessing?: Preprocessing;
  /** Its last layer applies a softmax: it outputs probabilities, not logits. */
  softmaxOutput: boolean;
  name: string;
  /** Its card and architecture, where it has them (a model folder with a card, a .pth with --arch). */
  card?: ModelCard;
  plugin?: TfjsArchitecture;
}

export const DEFAULT_BATCH = 16;

export function parseBatchSize(text: string | undefined, fallback = DEFAULT_BATCH): number {
  if (text === undefined) return fallback;
  const size = Number(text);
  if (!/^\d+$/.test(text.trim()) || size < 1) throw new UserError(`--batch-size takes a whole number ≥ 1, got "${text}".`);
  return size;
}

/** The --input paths as one .npy or a list of image files (folders expanded: their images, sorted by name). */
export async function readInputs(paths: readonly string[], use: Use = 'predict'): Promise<Inputs> {
  const { IMAGE_EXTENSIONS, isImageFileName } = await import('../core/io/image-io.ts');
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
    throw new UserError(`--input takes one .npy array, or image files and folders, not both and not several arrays; ${use} them in separate runs.`);
  }
  if (arrays.length === 1) {
    const { readNpy } = await import('../core/io/npy.ts');
    const array = await readNpy(arrays[0]);
    const { shape } = array;
    if (shape.length !== 4 || shape[3] !== 3 || shape[0] === 0) {
      throw new UserError(
        `${arrays[0]} holds an array of shape (${shape.join(', ')}), but ${use} feeds a .npy as the network's input: [n, height, width, 3] (NHWC, float32, already preprocessed)${shape.length === 3 && shape[2] === 3 ? '; add the batch axis with array[None]' : ''}.`,
      );
    }
    if (array.dtype !== 'float32' && array.dtype !== 'float64') {
      throw new UserError(`${arrays[0]} holds ${array.dtype} values, but the network's input is float32 after preprocessing; convert it with array.astype(numpy.float32) (and normalise it as the model expects), or give the image files instead.`);
    }
    return { kind: 'npy', file: arrays[0], array };
  }
  return { kind: 'images', files };
}

export function inputCount(inputs: Inputs): number {
  return inputs.kind === 'npy' ? inputs.array.shape[0] : inputs.files.length;
}

/** How input `i` is named in printed tables: `inputs.npy[2]` or the image's path. */
export function inputLabel(inputs: Inputs, i: number): string {
  return inputs.kind === 'npy' ? `${path.basename(inputs.file)}[${i}]` : shownPath(inputs.files[i]);
}

/** The model's [height, width], or undefined where its input size is not fixed. */
export function modelInputSize(model: TF.LayersModel): [number, number] | undefined {
  const shape = model.inputs[0].shape;
  return typeof shape[1] === 'number' && typeof shape[2] === 'number' ? [shape[1], shape[2]] : undefined;
}

function endsInSoftmax(model: TF.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  return (last.getConfig() as { activation?: unknown }).activation === 'softmax' || last.getClassName() === 'Softmax';
}

/** Where the model comes from, checked before any tensor work: a state dict with its architecture, or a tfjs model folder. */
export type ModelSource =
  | { kind: 'onnx'; file: string; plugin: OnnxArchitecture; params: Params; inputSize?: [number, number]; classes?: string[] }
  | { kind: 'pth'; file: string; plugin: TfjsArchitecture; params: Params; inputSize?: [number, number]; classes?: string[] }
  | { kind: 'tfjs'; folder: string; card?: ModelCard; plugin?: TfjsArchitecture; archNormalisation?: Normalisation };

const MODEL_HINT = 'give a model folder or its model.json, a name from salgrid weights list, a .pth file with --arch, or an .onnx file';

/** The `onnx` architecture from the registry, with the --arch-param flags checked against its params. */
async function onnxSource(file: string, options: ModelOptions, inputs: Inputs): Promise<ModelSource> {
  if (options.arch !== undefined && options.arch !== 'onnx') {
    throw new UserError(`--model ${options.model} is an ONNX file, which the onnx architecture reads; drop --arch ${options.arch} (its layers, CAM target and preprocessing come from --arch-param, e.g. normalize=unit, camLayer=features.12).`);
  }
  const registry = await cliRegistry(options.plugin ?? []);
  const { isOnnxArchitecture } = await import('../core/tensor/onnx-architecture.ts');
  const plugin = registry.has('architecture', 'onnx') ? registry.get('architecture', 'onnx') : undefined;
  if (!plugin || !isOnnxArchitecture(plugin)) throw new UserError(`--model ${options.model} is an ONNX file, but no onnx architecture is registered to read it.`);
  const params = archParams(plugin, options.archParam ?? []);
  if (!existsSync(file)) throw new MissingInputError(file, 'ONNX model', 'check --model');
  const inputSize = parseInputSize(options.inputSize) ?? (inputs.kind === 'npy' ? [inputs.array.shape[1], inputs.array.shape[2]] as [number, number] : undefined);
  return { kind: 'onnx', file, plugin, params, inputSize, classes: parseClasses(options.classes) };
}

/**
 * Finds the model `--model` names and checks the flags that go with it. For
 * `explain`, a model with a card also gets its architecture plugin (which
 * knows its CAM layers), looked up in the registry here so that a missing
 * one is reported before any tensor work.
 */
export async function locateModel(options: ModelOptions, inputs: Inputs, use: Use = 'predict'): Promise<ModelSource> {
  const location = options.model;
  if (location.toLowerCase().endsWith('.onnx')) return onnxSource(path.resolve(location), options, inputs);
  if (isStateDictFile(location)) {
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
    if (use === 'predict') return { kind: 'tfjs', folder, card };
    const registry = await cliRegistry(options.plugin ?? []);
    const plugin = await tfjsArchitecture(registry, card.architecture.id, `${path.join(folder, MODEL_CARD)} names an architecture salgrid cannot load (add --plugin <module> if a plugin provides it)`);
    return { kind: 'tfjs', folder, card, plugin };
  }
  let archNormalisation: Normalisation | undefined;
  if (options.arch !== undefined) archNormalisation = (await tfjsArchitecture(await cliRegistry(options.plugin ?? []), options.arch)).normalisation;
  else if (inputs.kind === 'images' && inputs.files.length > 0) {
    throw new UserError(
      `${folder} is a bare tfjs model (no ${MODEL_CARD}), so how images become its input is unknown; add --arch <id> to preprocess them as that architecture does (torchvision's: ImageNet normalisation) at the model's input size, or give a preprocessed .npy [n, height, width, 3] instead of images.`,
    );
  }
  return { kind: 'tfjs', folder, archNormalisation };
}

export async function loadModel(source: ModelSource): Promise<Model> {
  if (source.kind === 'onnx') {
    const { model, card } = await source.plugin.importOnnx(source.file, source.params, { inputSize: source.inputSize, classes: source.classes });
    return { graph: { model, card, plugin: source.plugin }, classes: card.classes, preprocessing: card.preprocessing, softmaxOutput: model.finalSoftmax(), name: source.file, card };
  }
  if (source.kind === 'pth') {
    const { model, card } = await source.plugin.importPyTorch(source.file, source.params, { inputSize: source.inputSize, classes: source.classes });
    return { model, classes: card.classes, preprocessing: card.preprocessing, softmaxOutput: false, name: source.file, card, plugin: source.plugin };
  }
  const { loadLayersModel } = await import('../core/io/model-io.ts');
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
  return { model, classes: source.card?.classes, preprocessing, softmaxOutput: !source.card && endsInSoftmax(model), name: source.folder, card: source.card, plugin: source.plugin };
}

/**
 * The model as explainers take it: through its architecture plugin where it
 * has a card (layers named by torch module paths, the architecture's default
 * CAM layer), else as a bare tfjs model (its tfjs layer names, the last
 * convolution as the default CAM layer).
 */
export async function explainableModel(model: Model): Promise<LoadedModel> {
  if (model.graph) return model.graph.plugin.loaded(model.graph.model, model.graph.card);
  const tfjsModel = tfjsModelOf(model);
  if (model.card && model.plugin) return model.plugin.loaded(tfjsModel, model.card);
  const { bareLoadedModel } = await import('../core/tensor/tensor-explainer.ts');
  return bareLoadedModel(tfjsModel, { classes: model.classes, preprocessing: model.preprocessing });
}

/** The model's tfjs layers-model; `use` says what needs one, for the error an ONNX file gets. */
export function tfjsModelOf(model: Model, use = 'this command'): TF.LayersModel {
  if (!model.model) throw new UserError(`${model.name} is an ONNX graph, which ${use} does not take; it needs a salgrid model (a model folder, a store name or a .pth with --arch).`);
  return model.model;
}

/** Checks a .npy input against the model's fixed input size, if it has one. */
export function checkInputShape(model: Model, inputs: Inputs, use: Use = 'predict'): void {
  if (inputs.kind !== 'npy') return;
  const size = model.graph ? model.graph.card.preprocessing.size : modelInputSize(tfjsModelOf(model));
  const [n, h, w] = inputs.array.shape;
  if (size && (h !== size[0] || w !== size[1])) {
    throw new UserError(
      `${inputs.file} holds ${n} input(s) of ${h}×${w} pixels (shape (${inputs.array.shape.join(', ')})), but the model takes ${size[0]}×${size[1]}, i.e. [n, ${size[0]}, ${size[1]}, 3]; resize the inputs, or give the image files so that ${use} preprocesses them.`,
    );
  }
}

/**
 * Runs `fn` on consecutive batches of the network's input: slices of the
 * .npy as they are, or the images preprocessed as the model says. Each
 * batch's tensor is disposed after `fn`; `indices` are the inputs' positions.
 */
export async function forEachInputBatch(model: Model, inputs: Inputs, batchSize: number, fn: (input: TF.Tensor4D, indices: number[]) => Promise<void> | void): Promise<void> {
  if (inputs.kind === 'images') {
    const { ImageBatches } = await import('../core/tensor/image-batches.ts');
    await new ImageBatches(inputs.files, model.preprocessing!).forEachBatch(batchSize, fn);
    return;
  }
  const tf = await import('@tensorflow/tfjs');
  const [count, h, w] = inputs.array.shape;
  const per = h * w * 3;
  const data = inputs.array.data instanceof Float32Array ? inputs.array.data : Float32Array.from(inputs.array.data);
  for (let start = 0; start < count; start += batchSize) {
    const n = Math.min(batchSize, count - start);
    const input = tf.tensor4d(data.subarray(start * per, (start + n) * per), [n, h, w, 3]);
    try {
      await fn(input, Array.from({ length: n }, (_, i) => start + i));
    } finally {
      input.dispose();
    }
  }
}
