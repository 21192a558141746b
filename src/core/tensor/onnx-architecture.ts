/**
 * An architecture plugin for CNNs that come as ONNX files (`torch.onnx.export`
 * of any classifier: EfficientNet, ConvNeXt, MobileNetV3…): nothing is
 * trained; the "train" task imports the file — keyed by its contents — into
 * a model folder (`model.onnx` + the model card), and everything downstream
 * runs it on the onnx engine. Layers are named by torch module paths (see
 * onnx/imported-model.ts) or ONNX value names.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MissingInputError, UserError } from '../errors.ts';
import type { ArchitecturePlugin, CamLayers, ImportContext, JsonSchema, LoadedModel, Params, TrainContext, TrainingConfig } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { createEngine } from './engines.ts';
import { undifferentiableOps } from './onnx/gradient.ts';
import { ImportedOnnxModel, type InputLayout } from './onnx/imported-model.ts';
import { readOnnxModel } from './onnx/read-model.ts';
import { predictStage } from './predict-images.ts';
import { IMAGENET_NORMALISATION, type Normalisation } from './preprocess.ts';
import { MODEL_CARD, TRAINED_MODEL_DIR, readModelCard, type ModelCard } from './tfjs-architecture.ts';

export const ONNX_MODEL_FILE = 'model.onnx';
const CARD_FORMAT = 1;

export interface OnnxParams {
  file?: string;
  classes?: string[];
  inputSize?: [number, number];
  layout: InputLayout;
  normalize: 'imagenet' | 'unit' | { mean: [number, number, number]; std: [number, number, number] };
  camLayer?: string;
}

export interface OnnxArchitecture extends ArchitecturePlugin {
  load(dir: string): Promise<LoadedModel>;
  /** Reads an ONNX file as a model with its card (for `salgrid predict/explain/score --model x.onnx`). */
  importOnnx(file: string, params: Params, options?: { inputSize?: [number, number]; classes?: string[] }): Promise<{ model: ImportedOnnxModel; card: ModelCard }>;
  /** The model as explainers take it. */
  loaded(model: ImportedOnnxModel, card: ModelCard): LoadedModel;
}

export function isOnnxArchitecture(plugin: ArchitecturePlugin): plugin is OnnxArchitecture {
  return typeof (plugin as Partial<OnnxArchitecture>).importOnnx === 'function';
}

export function resolveOnnxParams(params: Params): OnnxParams {
  const size = params.inputSize;
  const inputSize = typeof size === 'number' ? [size, size] as [number, number] : Array.isArray(size) ? [Number(size[0]), Number(size[1])] as [number, number] : undefined;
  return {
    ...(typeof params.file === 'string' ? { file: params.file } : {}),
    ...(Array.isArray(params.classes) ? { classes: params.classes.map(String) } : {}),
    ...(inputSize ? { inputSize } : {}),
    layout: params.layout === 'nhwc' ? 'nhwc' : 'nchw',
    normalize: (params.normalize ?? 'imagenet') as OnnxParams['normalize'],
    ...(typeof params.camLayer === 'string' ? { camLayer: params.camLayer } : {}),
  };
}

function normalisationOf(normalize: OnnxParams['normalize']): Normalisation {
  if (normalize === 'imagenet') return IMAGENET_NORMALISATION;
  if (normalize === 'unit') return { kind: 'unit' };
  return { kind: 'meanStd', mean: [...normalize.mean], std: [...normalize.std] };
}

/** The folder holding model.onnx: a train artifact's `model/`, or the folder itself. */
function onnxFolder(dir: string): string {
  return existsSync(path.join(dir, TRAINED_MODEL_DIR, ONNX_MODEL_FILE)) ? path.join(dir, TRAINED_MODEL_DIR) : dir;
}

export function defineOnnxArchitecture(spec: { id: string; version: string; description: string; params: JsonSchema }): OnnxArchitecture {
  /** The file's model at its input size: fixed by the file where it is, else the params', else `fallback`. */
  const open = (bytes: Uint8Array, file: string, p: OnnxParams, fallback: [number, number] | undefined): { model: ImportedOnnxModel; inputSize: [number, number] } => {
    const read = readOnnxModel(bytes, file);
    const dims = read.input.dims;
    const [h, w] = p.layout === 'nchw' ? [dims[2], dims[3]] : [dims[1], dims[2]];
    const fixed = typeof h === 'number' && typeof w === 'number' ? [h, w] as [number, number] : undefined;
    if (fixed && p.inputSize && (fixed[0] !== p.inputSize[0] || fixed[1] !== p.inputSize[1])) {
      throw new UserError(`${file} takes ${fixed[0]}×${fixed[1]} images, but inputSize says ${p.inputSize[0]}×${p.inputSize[1]}; drop inputSize or export the model for that size.`);
    }
    const size = fixed ?? p.inputSize ?? fallback;
    if (!size) throw new UserError(`${file} takes images of any size; set its inputSize (e.g. [224, 224]).`);
    return { model: new ImportedOnnxModel(read, bytes, { layout: p.layout, inputSize: size }), inputSize: size };
  };

  /** The card of a model read from `file`; checks the head against the class names and the CAM layer against the graph. */
  const cardFor = (model: ImportedOnnxModel, file: string, p: OnnxParams, inputSize: [number, number], classNames: string[] | undefined, origin: Record<string, unknown>): ModelCard => {
    const classes = model.classes();
    const names = classNames ?? p.classes ?? Array.from({ length: classes }, (_, i) => String(i));
    if (names.length !== classes) {
      throw new UserError(`${file} scores ${classes} classes, but ${names.length} class names were given (${names.slice(0, 6).join(', ')}${names.length > 6 ? ', …' : ''}); give a model whose head has one output per class.`);
    }
    const target = p.camLayer ?? model.defaultCamLayer();
    model.value(model.forward(1, false), target);
    const params: Params = { file: ONNX_MODEL_FILE, layout: p.layout, normalize: p.normalize as Params[string], inputSize, ...(p.camLayer ? { camLayer: p.camLayer } : {}) };
    return {
      format: CARD_FORMAT,
      architecture: { id: spec.id, version: spec.version, params },
      classes: names,
      preprocessing: { size: inputSize, normalisation: normalisationOf(p.normalize) },
      target,
      origin,
    };
  };

  const loaded = (model: ImportedOnnxModel, card: ModelCard): LoadedModel => {
    const camLayers = (module: string): CamLayers => {
      model.value(model.forward(1, false), module);
      return { module, gradient: module, activation: module };
    };
    const target = camLayers(card.target);
    // The engine last: nothing after it can throw and leave it undisposed.
    return { name: model.name, outputsProbabilities: model.finalSoftmax(), classes: card.classes, preprocessing: card.preprocessing, target, camLayers, convLayers: [], engine: createEngine(model) };
  };

  const load = async (dir: string): Promise<LoadedModel> => {
    const folder = onnxFolder(dir);
    const file = path.join(folder, ONNX_MODEL_FILE);
    const card = await readModelCard(folder);
    if (!card || !existsSync(file)) throw new UserError(`${folder} holds no ${ONNX_MODEL_FILE} with its ${MODEL_CARD}; it is not an ONNX model salgrid imported.`);
    const p = resolveOnnxParams(card.architecture.params);
    return loaded(open(await readFile(file), file, p, card.preprocessing.size).model, card);
  };

  const modelFile = (params: OnnxParams, manifestDir: string): string => {
    if (!params.file) throw new UserError(`The ${spec.id} architecture needs its file param (the .onnx to explain), or trained: on the model entry naming one per fold.`);
    const file = path.resolve(manifestDir, params.file);
    if (!existsSync(file)) throw new MissingInputError(file, 'ONNX model', `check the ${spec.id} architecture's file param`);
    return file;
  };

  /** Imports `file` into the task's model folder, checked against the fold's classes. */
  const importInto = async (ctx: Pick<TrainContext, 'params' | 'data' | 'out' | 'warn'>, file: string): Promise<void> => {
    const p = resolveOnnxParams(ctx.params);
    const bytes = await readFile(file);
    const { model, inputSize } = open(bytes, file, p, ctx.data.imageSize);
    const card = cardFor(model, file, p, inputSize, p.classes ?? ctx.data.classes, { imported: path.basename(file), fold: ctx.data.fold });
    if (p.classes && p.classes.join('\n') !== ctx.data.classes.join('\n')) {
      throw new UserError(`${file}: the classes param (${p.classes.join(', ')}) differs from the dataset's classes (${ctx.data.classes.join(', ')}); the predictions would be scored against the wrong labels. Drop classes or list the dataset's in the head's order.`);
    }
    const blocked = undifferentiableOps(model.forward(1, false).graph);
    if (blocked.length > 0) {
      const listed = blocked.slice(0, 3).map((entry) => `${entry.op} (node ${entry.node})`).join(', ');
      ctx.warn(`${path.basename(file)} has ops the ONNX engine cannot differentiate — ${listed}${blocked.length > 3 ? ', …' : ''} — so gradient-based explainers (Grad-CAM and its kin, saliency, integrated gradients, …) fail where their gradient crosses them; forward-only ones (occlusion, ScoreCAM, AblationCAM) and the metrics still run.`);
    }
    const folder = path.join(ctx.out, TRAINED_MODEL_DIR);
    await writeFileAtomic(path.join(folder, ONNX_MODEL_FILE), bytes);
    await writeFileAtomic(path.join(folder, MODEL_CARD), `${JSON.stringify(card, null, 1)}\n`);
  };

  const train = async (ctx: TrainContext): Promise<void> => {
    await importInto(ctx, modelFile(resolveOnnxParams(ctx.params), ctx.manifestDir));
  };

  /** A fold's own .onnx (`trained:`), imported as `train` imports the file param's. */
  const importTrained = async (ctx: ImportContext): Promise<void> => {
    if (!existsSync(ctx.file)) throw new MissingInputError(ctx.file, `ONNX model of fold ${ctx.data.fold}`, 'check trained: in the manifest');
    await importInto(ctx, ctx.file);
  };

  const predict = predictStage(load);

  const importOnnx: OnnxArchitecture['importOnnx'] = async (file, rawParams, options = {}) => {
    const p = resolveOnnxParams(rawParams);
    if (!existsSync(file)) throw new MissingInputError(file, 'ONNX model', 'check --model');
    const bytes = await readFile(file);
    const { model, inputSize } = open(bytes, file, { ...p, ...(options.inputSize ? { inputSize: options.inputSize } : {}) }, [224, 224]);
    return { model, card: cardFor(model, file, p, inputSize, options.classes, { imported: path.basename(file) }) };
  };

  return {
    kind: 'architecture',
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: spec.params,
    importsOnly: true,
    train,
    importTrained,
    predict,
    load,
    loaded,
    importOnnx,
    trainingFiles: (params: Params, _training: TrainingConfig, manifestDir: string) => [modelFile(resolveOnnxParams(params), manifestDir)],
  };
}
