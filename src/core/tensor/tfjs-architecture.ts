/**
 * Turns the description of a tfjs layers architecture (how to build it, load
 * a PyTorch state dict into it, where its head and CAM layers are) into an
 * architecture plugin: training with optional pretrained weights and a fresh
 * head, prediction, loading for explainers, and PyTorch import for the CLI.
 * It knows no particular network; each lives in one file in src/plugins.
 *
 * A model folder holds `model.json` + `weights.bin` (a tfjs layers-model) and
 * `salgrid-model.json` (the model card: architecture, resolved params,
 * classes, preprocessing, default CAM target, where the weights came from).
 * A train artifact keeps its model in `model/`, with `history.json` beside it.
 */
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import stringify from 'safe-stable-stringify';
import { MissingInputError, UserError } from '../errors.ts';
import type { ArchitecturePlugin, CamLayers, ImportContext, JsonSchema, Params, TfjsLoadedModel, TrainContext, TrainingConfig } from '../plugins/types.ts';
import { mixSeed, withSeededMathRandom } from '../random.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { createEngine } from './engines.ts';
import { outputsProbabilities } from './model-metric.ts';
import { predictStage } from './predict-images.ts';
import { ImageBatches } from './image-batches.ts';
import { layersModelFiles } from '../io/layers-model-files.ts';
import { loadLayersModel, saveLayersModel } from '../io/model-io.ts';
import { validatePreprocessing, type Normalisation, type Preprocessing } from './preprocess.ts';
import { isStateDictFile, readStateDict, type StateDict } from '../io/pytorch-state-dict.ts';
import { batchesTrackedIn, tfjsName } from './torch-weights.ts';
import { trainModel, type TrainLoopConfig } from './train-loop.ts';
import { IMAGENET_SUFFIX, storedWeightsDir } from './weights-store.ts';

export const MODEL_CARD = 'salgrid-model.json';
export const TRAINED_MODEL_DIR = 'model';
const CARD_FORMAT = 1;

/** Where a model's weights came from, recorded in its card. */
export type PretrainedKind = 'none' | 'imagenet' | 'file';

export interface ModelCard {
  format: number;
  architecture: { id: string; version: string; params: Params };
  classes: string[];
  preprocessing: Preprocessing;
  /** Torch module path of the default CAM target. */
  target: string;
  origin: Record<string, unknown>;
}

/** The training steps the model's batch norms have counted (PyTorch's num_batches_tracked), as its card records them; 0 where unknown. */
export function batchesTrackedOf(card: ModelCard | undefined): number {
  const tracked = card?.origin.batchesTracked;
  return typeof tracked === 'number' ? tracked : 0;
}

export interface TfjsArchitectureSpec<R extends Params = Params> {
  id: string;
  version: string;
  description: string;
  params: JsonSchema;
  /** The manifest's params, defaults and presets filled in; `pretrained` says what weights the model will start from. */
  resolve(params: Params, pretrained: PretrainedKind): R;
  build(params: R, numClasses: number, inputSize: [number, number]): tf.LayersModel;
  /** A model holding the state dict's weights, its head sized from the file. */
  fromStateDict(state: StateDict, params: R, inputSize: [number, number]): tf.LayersModel;
  /** Torch module path of the classifier (the Dense layer transfer learning replaces). */
  head: string;
  /** Input normalisation the architecture is trained with (torchvision's: ImageNet statistics). */
  normalisation: Normalisation;
  /** Torch module path of the default CAM target. */
  target(params: R): string;
  /** The tfjs layer producing a torch module's output; a UserError naming valid examples when there is none. */
  layerForModule(model: tf.LayersModel, module: string): tf.layers.Layer;
  /** Where hooks on a module see different tensors than the module's output layer (DenseNet's norm5). */
  camLayers?(model: tf.LayersModel, module: string): CamLayers | undefined;
  convLayers(model: tf.LayersModel): string[];
  /**
   * Layers the torch original applies functionally (F.relu in a forward,
   * not an nn.ReLU module): Captum's module hooks do not reach them, so
   * guided backprop and DeepLift leave them plain (createEngine).
   */
  functionalLayers?(model: tf.LayersModel): string[];
  /** torchvision's ImageNet weights for these params: the store name and the official file. */
  imagenet?(params: R): { name: string; url: string } | undefined;
}

export interface TfjsArchitecture<R extends Params = Params> extends ArchitecturePlugin {
  load(dir: string): Promise<TfjsLoadedModel>;
  importTrained(ctx: ImportContext): Promise<void>;
  trainingFiles(params: Params, training: TrainingConfig, manifestDir: string): string[];
  /** A model in memory (e.g. from importPyTorch) with its card, as explainers take it. */
  loaded(model: tf.LayersModel, card: ModelCard): TfjsLoadedModel;
  /** Reads a PyTorch state dict into a model with its card (for `salgrid weights import`, `predict`, `explain`). */
  importPyTorch(file: string, params: Params, options?: { inputSize?: [number, number]; classes?: string[] }): Promise<{ model: tf.LayersModel; card: ModelCard }>;
  resolve(params: Params, pretrained: PretrainedKind): R;
  /** A fresh model for these (manifest) params, with weights from tfjs's initialisers (seed them with withSeededMathRandom). */
  build(params: Params, numClasses: number, inputSize: [number, number], pretrained?: PretrainedKind): tf.LayersModel;
  /** torchvision's ImageNet weights for these (manifest) params, or undefined: the store name `pretrained: imagenet` looks for and the official file. */
  imagenet(params: Params): { name: string; url: string } | undefined;
  /** Input normalisation the architecture is trained with. */
  normalisation: Normalisation;
}

export function isTfjsArchitecture(plugin: ArchitecturePlugin): plugin is TfjsArchitecture {
  return typeof (plugin as Partial<TfjsArchitecture>).importPyTorch === 'function' && typeof plugin.load === 'function';
}

export function pretrainedKind(pretrained: string | undefined): PretrainedKind {
  if (pretrained === undefined || pretrained === 'none') return 'none';
  return pretrained === 'imagenet' ? 'imagenet' : 'file';
}


/** The folder of a model given as a folder, a model.json or a train artifact. */
export function modelFolder(location: string): string {
  const dir = location.endsWith('.json') ? path.dirname(location) : location;
  return existsSync(path.join(dir, TRAINED_MODEL_DIR, 'model.json')) ? path.join(dir, TRAINED_MODEL_DIR) : dir;
}

/** The model card beside a model.json, or undefined for a bare tfjs model. */
export async function readModelCard(folder: string): Promise<ModelCard | undefined> {
  const file = path.join(folder, MODEL_CARD);
  if (!existsSync(file)) return undefined;
  const card = JSON.parse(await readFile(file, 'utf8')) as ModelCard;
  if (card.format !== CARD_FORMAT || !card.architecture?.id || !Array.isArray(card.classes)) {
    throw new UserError(`${file} is not a salgrid model card this version can read; re-import or re-train the model.`);
  }
  card.preprocessing = validatePreprocessing(card.preprocessing, file);
  return card;
}

export async function saveModelWithCard(model: tf.LayersModel, card: ModelCard, folder: string): Promise<void> {
  await saveLayersModel(model, folder);
  await writeFileAtomic(path.join(folder, MODEL_CARD), `${JSON.stringify(card, null, 1)}\n`);
}

/**
 * Copies every weight of `target` from the same-named layer of `source`,
 * except the head's: the ImageNet (or any other) body under a fresh
 * classifier. Nothing is changed unless every layer matches.
 */
export function transferWeights(source: tf.LayersModel, target: tf.LayersModel, headLayer: string, describe: string): void {
  const pairs: [tf.layers.Layer, tf.Tensor[]][] = [];
  for (const layer of target.layers) {
    if (layer.name === headLayer || layer.weights.length === 0) continue;
    let from: tf.layers.Layer;
    try {
      from = source.getLayer(layer.name);
    } catch {
      throw new UserError(`The pretrained weights ${describe} have no layer ${layer.name}; they were made for another configuration of this architecture (compare its params with the ones they were imported with).`);
    }
    const weights = from.getWeights();
    const expected = layer.weights.map((w) => w.shape);
    const mismatch = weights.length !== expected.length || weights.some((w, i) => w.shape.join('×') !== expected[i].join('×'));
    if (mismatch) {
      throw new UserError(
        `The pretrained weights ${describe} do not fit layer ${layer.name}: [${weights.map((w) => w.shape.join('×')).join(', ')}] there, [${expected.map((s) => s.join('×')).join(', ')}] here; they were made for another configuration of this architecture.`,
      );
    }
    pairs.push([layer, weights]);
  }
  for (const [layer, weights] of pairs) layer.setWeights(weights);
}

export function defineTfjsArchitecture<R extends Params>(spec: TfjsArchitectureSpec<R>): TfjsArchitecture<R> {
  const headLayer = tfjsName(spec.head);

  const preprocessingFor = (inputSize: [number, number]): Preprocessing => ({ size: inputSize, normalisation: spec.normalisation });

  const card = (params: R, classes: string[], inputSize: [number, number], origin: Record<string, unknown>): ModelCard => ({
    format: CARD_FORMAT,
    architecture: { id: spec.id, version: spec.version, params },
    classes,
    preprocessing: preprocessingFor(inputSize),
    target: spec.target(params),
    origin,
  });

  const imagenetLocation = (params: R) => {
    const official = spec.imagenet?.(params);
    if (!official) {
      throw new UserError(`${spec.id} with params ${JSON.stringify(params)} has no ImageNet weights from torchvision; use pretrained: none, or a path to weights of your own.`);
    }
    return { ...official, dir: storedWeightsDir(official.name) };
  };

  /** The files the pretrained weights come from (absolute), checked to exist. */
  const pretrainedFiles = (params: R, pretrained: string, manifestDir: string): string[] => {
    const kind = pretrainedKind(pretrained);
    if (kind === 'none') return [];
    if (kind === 'imagenet') {
      const { dir, url, name } = imagenetLocation(params);
      try {
        return layersModelFiles(dir);
      } catch (error) {
        if (!(error instanceof MissingInputError)) throw error;
        throw new MissingInputError(error.path, `ImageNet weights for ${spec.id}`, `download ${url} once and run: salgrid weights import ${spec.id} ${path.basename(url)} --as ${name}`);
      }
    }
    const file = path.resolve(manifestDir, pretrained);
    if (isStateDictFile(file)) {
      if (!existsSync(file)) throw new MissingInputError(file, 'Pretrained weights', 'check training.pretrained in the manifest');
      return [file];
    }
    const json = path.join(modelFolder(file), 'model.json');
    if (!existsSync(json)) throw new MissingInputError(json, 'Pretrained model', 'training.pretrained takes imagenet, none, a .pth file or a tfjs model.json');
    // model.json and exactly the weights files it lists (sharded weights: group1-shard1of3.bin…).
    return layersModelFiles(json);
  };

  const loadPretrained = async (params: R, pretrained: string, manifestDir: string, inputSize: [number, number]): Promise<{ model: tf.LayersModel; describe: string }> => {
    const kind = pretrainedKind(pretrained);
    if (kind === 'imagenet') {
      const { dir } = imagenetLocation(params);
      pretrainedFiles(params, pretrained, manifestDir);
      return { model: await loadLayersModel(dir), describe: `in ${dir}` };
    }
    const file = path.resolve(manifestDir, pretrained);
    if (isStateDictFile(file)) return { model: spec.fromStateDict(await readStateDict(file), params, inputSize), describe: `in ${file}` };
    return { model: await loadLayersModel(modelFolder(file)), describe: `in ${modelFolder(file)}` };
  };

  const camLayersOf = (model: tf.LayersModel, module: string): CamLayers => {
    const special = spec.camLayers?.(model, module);
    if (special) return special;
    const layer = spec.layerForModule(model, module).name;
    return { module, gradient: layer, activation: layer };
  };

  const loaded = (model: tf.LayersModel, found: ModelCard): TfjsLoadedModel => {
    const target = camLayersOf(model, found.target);
    const convLayers = spec.convLayers(model);
    // The engine last: nothing after it can throw and leave it undisposed.
    return { name: model.name, model, outputsProbabilities: outputsProbabilities(model), engine: createEngine(model, { functionalLayers: spec.functionalLayers?.(model) ?? [] }), classes: found.classes, preprocessing: found.preprocessing, target, camLayers: (module: string) => camLayersOf(model, module), convLayers };
  };

  const load = async (dir: string): Promise<TfjsLoadedModel> => {
    const folder = modelFolder(dir);
    const found = await readModelCard(folder);
    if (!found) throw new UserError(`${folder} has no ${MODEL_CARD}; it is not a model salgrid trained or imported.`);
    const model = await loadLayersModel(folder);
    try {
      return loaded(model, found);
    } catch (error) {
      model.dispose();
      throw error;
    }
  };

  const train = async (ctx: TrainContext): Promise<void> => {
    const folder = path.join(ctx.out, TRAINED_MODEL_DIR);
    if (existsSync(path.join(folder, MODEL_CARD))) return; // finished before a kill, not yet published
    const { data, training } = ctx;
    const pretrained = training.pretrained ?? 'none';
    const params = spec.resolve(ctx.params, pretrainedKind(pretrained));
    const model = withSeededMathRandom(mixSeed(training.seed, data.fold, 0x5a17), () => spec.build(params, data.classes.length, data.imageSize));
    try {
      if (pretrainedKind(pretrained) !== 'none') {
        const source = await loadPretrained(params, pretrained, ctx.manifestDir, data.imageSize);
        try {
          transferWeights(source.model, model, headLayer, source.describe);
        } finally {
          source.model.dispose();
        }
      }
      const preprocessing = preprocessingFor(data.imageSize);
      const batches = (items: typeof data.train) => {
        const images = new ImageBatches(items.map((item) => data.resolve(item.image)), preprocessing);
        return { images, provider: { labels: items.map((item) => item.label), load: (indices: number[]) => images.unit(indices) } };
      };
      const trainSet = batches(data.train);
      const valSet = data.val.length > 0 ? batches(data.val) : undefined;
      const result = await trainModel({
        model,
        train: trainSet.provider,
        val: valSet?.provider,
        config: training as unknown as TrainLoopConfig,
        out: ctx.out,
        writeFile: ctx.writeFile,
        progress: ctx.progress,
        signal: ctx.signal,
        normalise: (unit) => trainSet.images.normalise(unit),
        bestDir: TRAINED_MODEL_DIR,
      });
      const last = result.history[result.history.length - 1];
      await writeFileAtomic(
        path.join(folder, MODEL_CARD),
        `${JSON.stringify(card(params, data.classes, data.imageSize, { trained: { fold: data.fold, pretrained, bestEpoch: result.bestEpoch, epochs: training.epochs, finalTrainAccuracy: last?.trainAccuracy ?? null, bestValLoss: result.bestValLoss ?? null } }), null, 1)}\n`,
      );
      // The model is complete: the checkpoints only served resuming.
      await rm(path.join(ctx.out, 'checkpoints'), { recursive: true, force: true });
      await rm(path.join(ctx.out, 'checkpoint.json'), { force: true });
    } finally {
      model.dispose();
    }
  };

  /**
   * A fold's model trained elsewhere (`trained:`): a PyTorch state dict, or
   * a tfjs model whose weights are copied into this architecture built with
   * the entry's params (so they must fit it, layer by layer), written as a
   * train task writes its model.
   */
  const importTrained = async (ctx: ImportContext): Promise<void> => {
    const folder = path.join(ctx.out, TRAINED_MODEL_DIR);
    if (existsSync(path.join(folder, MODEL_CARD))) return; // finished before a kill, not yet published
    const { data, file } = ctx;
    const fromTorch = isStateDictFile(file);
    const source = fromTorch ? undefined : modelFolder(file);
    const sourceCard = source ? await readModelCard(source) : undefined;
    // As the model was made: a model salgrid trained from scratch resolves as `none` (GoogLeNet's transformInput).
    const made = sourceCard?.origin.trained as { pretrained?: string } | undefined;
    const params = spec.resolve(ctx.params, made ? pretrainedKind(made.pretrained) : 'file');
    if (sourceCard && sourceCard.architecture.id === spec.id && stringify(sourceCard.architecture.params) !== stringify(params)) {
      throw new UserError(`${file} is a ${spec.id} made with params ${stringify(sourceCard.architecture.params)}, but this model entry resolves to ${stringify(params)}; give the entry the params the model was made with.`);
    }
    const named = sourceCard?.classes.some((name, i) => name !== String(i));
    if (sourceCard && named && sourceCard.classes.join('\n') !== data.classes.join('\n')) {
      throw new UserError(`${file} was made for the classes ${sourceCard.classes.join(', ')}, but the dataset's are ${data.classes.join(', ')}; the predictions would be scored against the wrong labels, so give the model of fold ${data.fold} trained on these classes, in this order.`);
    }
    let tracked = batchesTrackedOf(sourceCard);
    let model: tf.LayersModel;
    if (fromTorch) {
      const state = await readStateDict(file);
      model = spec.fromStateDict(state, params, data.imageSize);
      tracked = batchesTrackedIn(state);
    } else {
      const loaded = await loadLayersModel(source!);
      try {
        checkHead(loaded, file, data);
        model = withSeededMathRandom(0, () => spec.build(params, data.classes.length, data.imageSize));
        try {
          // Every layer, the head included: the model as it was trained, in this entry's configuration.
          transferWeights(loaded, model, '', `in ${file}`);
        } catch (error) {
          model.dispose();
          throw error;
        }
      } finally {
        loaded.dispose();
      }
    }
    try {
      checkHead(model, file, data);
      const origin = { imported: path.basename(file), fold: data.fold, ...(tracked > 0 ? { batchesTracked: tracked } : {}) };
      await saveModelWithCard(model, card(params, data.classes, data.imageSize, origin), folder);
    } finally {
      model.dispose();
    }
  };

  const predict = predictStage(load);

  const importPyTorch: TfjsArchitecture['importPyTorch'] = async (file, rawParams, options = {}) => {
    const params = spec.resolve(rawParams, 'file');
    const inputSize = options.inputSize ?? [224, 224];
    const state = await readStateDict(file);
    const model = spec.fromStateDict(state, params, inputSize);
    const tracked = batchesTrackedIn(state);
    const numClasses = (model.outputs[0].shape as number[])[1];
    const classes = options.classes ?? Array.from({ length: numClasses }, (_, i) => String(i));
    if (classes.length !== numClasses) {
      model.dispose();
      throw new UserError(`${file} holds a ${numClasses}-class head, but ${classes.length} class names were given.`);
    }
    return { model, card: card(params, classes, inputSize, { imported: path.basename(file), ...(tracked > 0 ? { batchesTracked: tracked } : {}) }) };
  };

  return {
    kind: 'architecture',
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: spec.params,
    train,
    importTrained,
    predict,
    load,
    loaded,
    importPyTorch,
    resolve: spec.resolve,
    imagenet: (params) => spec.imagenet?.(spec.resolve(params, 'imagenet')),
    normalisation: spec.normalisation,
    build: (params, numClasses, inputSize, pretrained = 'none') => spec.build(spec.resolve(params, pretrained), numClasses, inputSize),
    trainingFiles: (params, training, manifestDir) => pretrainedFiles(spec.resolve(params, pretrainedKind(training.pretrained)), training.pretrained ?? 'none', manifestDir),
  };
}

export { IMAGENET_SUFFIX };

/** A UserError unless the model has one output per class of the fold's data. */
function checkHead(model: tf.LayersModel, file: string, data: ImportContext['data']): void {
  const outputs = (model.outputs[0].shape as number[])[1];
  if (outputs !== data.classes.length) {
    throw new UserError(`${file} holds a ${outputs}-class head, but the dataset has ${data.classes.length} classes (${data.classes.join(', ')}); give the model of fold ${data.fold} trained on this dataset's classes.`);
  }
}

/** The side of a square input; torchvision-shaped builders take one number. */
export function squareSide(inputSize: [number, number], architecture: string): number {
  if (inputSize[0] !== inputSize[1]) {
    throw new UserError(`${architecture} is built for square inputs, but dataset.imageSize is [${inputSize.join(', ')}]; set it to [n, n] (the study used [224, 224]).`);
  }
  return inputSize[0];
}

/** torchvision's ImageNet weights files, by preset id (IMAGENET1K_V1, the weights the study's torchvision loaded). */
export const TORCHVISION_IMAGENET_URL = 'https://download.pytorch.org/models/';
