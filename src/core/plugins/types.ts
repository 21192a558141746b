/**
 * The plugin API: what a dataset, architecture, explainer or metric plugin
 * declares and the functions its stage calls. Core code depends on these
 * types only, never on a particular plugin.
 */
import type { LayersModel } from '@tensorflow/tfjs';
import type { ModelEngine } from '../tensor/engine.ts';
import type { Preprocessing } from '../tensor/preprocess.ts';

export type JsonSchema = Record<string, unknown>;
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Params = Record<string, Json>;

export const PLUGIN_KINDS = ['dataset', 'architecture', 'explainer', 'metric', 'chart'] as const;
export type PluginKind = (typeof PLUGIN_KINDS)[number];

export interface PluginInfo {
  kind: PluginKind;
  /** Lower-case id used in manifests, e.g. `gradcam`. */
  id: string;
  /** Bumped whenever the plugin's output for the same inputs changes: it is part of every cache key. */
  version: string;
  /** One line for `salgrid plugins`. */
  description: string;
  /**
   * JSON Schema (draft 2020-12) of the plugin's params: an object schema whose
   * properties carry defaults. Each property schema must stand on its own (no
   * `$ref` to the root), because grid axes are detected per property.
   */
  params: JsonSchema;
}

/** Services every stage function gets. */
export interface TaskContext<P = Params> {
  params: P;
  /** The task's staging folder: everything written here becomes the artifact when the task succeeds. It survives a crash, so long tasks checkpoint into it and resume. */
  out: string;
  /** Folder of the manifest, against which relative paths in params resolve. */
  manifestDir: string;
  /** Reports progress of a long task (images done, epochs…). */
  progress(done: number, total: number, note?: string): void;
  /** A warning shown to the user and recorded in the run's events. */
  warn(message: string): void;
  /** Aborted when the user insists on stopping (second Ctrl-C): checkpoint and return or throw. */
  signal: AbortSignal;
  /** Writes a file inside `out` atomically (temp file + rename), so a kill never leaves half a file. */
  writeFile(relativePath: string, data: string | Uint8Array): Promise<void>;
}

// ---------------------------------------------------------------- datasets

export interface DatasetItem {
  /** Stable id, unique within the dataset (e.g. `CG/img001.png`). */
  id: string;
  /** Index into `classes`. */
  label: number;
  /**
   * Path of the image. Plugins give absolute paths (files they generate go
   * inside `ctx.out`); the index stage stores them portably, and
   * `FoldData.resolve` turns them back into absolute paths.
   */
  image: string;
  /** Path of the item's layer map, if there is one. */
  layerMap?: string;
  sha256?: string;
  width?: number;
  height?: number;
}

export interface PredefinedFold {
  train: string[];
  val: string[];
  test: string[];
}

export interface DatasetIndex {
  classes: string[];
  items: DatasetItem[];
  /** Set by datasets that come split already (e.g. `kfold-folders`). */
  folds?: PredefinedFold[];
}

export interface DatasetPlugin<P = Params> extends PluginInfo {
  kind: 'dataset';
  /**
   * The files whose contents define the dataset (absolute paths). Their
   * SHA-256 hashes key the index task, so editing an image re-indexes. Throw
   * a `MissingInputError` naming the path when the data is absent. Datasets
   * generated from params alone return [].
   */
  inputFiles(params: P, manifestDir: string): Promise<string[]>;
  /** Lists the dataset. Generated datasets write their files into `ctx.out`. */
  index(ctx: TaskContext<P> & { files: FileRecord[] }): Promise<DatasetIndex>;
}

export interface FileRecord {
  path: string;
  sha256: string;
  size: number;
}

// ---------------------------------------------------------------- stage inputs

export interface TrainingConfig {
  epochs: number;
  batchSize: number;
  seed: number;
  optimizer: Params;
  schedule?: Params;
  augment?: Params;
  pretrained: string;
  [key: string]: Json | undefined;
}

/** One fold's view of the dataset, as train/predict/explain/score see it. */
export interface FoldData {
  fold: number;
  classes: string[];
  train: DatasetItem[];
  val: DatasetItem[];
  test: DatasetItem[];
  /** Absolute path of an item's image or layer map. */
  resolve(path: string): string;
  imageSize: [number, number];
}

export interface ModelRef {
  id: string;
  params: Params;
  /** Folder of the train artifact. */
  dir: string;
}

export interface TrainContext<P = Params> extends TaskContext<P> {
  data: FoldData;
  training: TrainingConfig;
}

/**
 * What `importTrained` gets: a train task's context without `training:`,
 * which does not key an import (changing epochs must not re-import), plus
 * the fold's model file.
 */
export interface ImportContext<P = Params> extends TaskContext<P> {
  data: FoldData;
  /** Absolute path of this fold's model as `trained:` names it: a file, or a folder (a tfjs model's). */
  file: string;
}

export interface PredictContext<P = Params> extends TaskContext<P> {
  data: FoldData;
  modelDir: string;
}

export interface Prediction {
  id: string;
  /** One probability per class, in the order of `data.classes`. */
  probabilities: number[];
}

/** The layers a CAM reads for one target module (they differ only where torch hooks see different tensors, e.g. DenseNet's norm5). */
export interface CamLayers {
  /** The torch module path asked for, e.g. `layer4`. */
  module: string;
  /** tfjs layer at whose output gradients are taken. */
  gradient: string;
  /** tfjs layer whose output is the activation map. */
  activation: string;
}

/** A trained or imported model, ready for explainers and perturbation metrics. The caller disposes `engine` and `model`. */
export interface LoadedModel {
  /** The model's name in messages. */
  name: string;
  /**
   * The tfjs layers-model, where the model is one: the source of truth for
   * the weights (training, prediction, FullGrad's biases) and what the engine
   * runs. Absent for a graph imported from an ONNX file, which only the onnx
   * engine runs.
   */
  model?: LayersModel;
  /** Its output is a softmax: `engine.scores(x, { beforeSoftmax: false })` gives probabilities, not logits. */
  outputsProbabilities: boolean;
  /** What explainers and perturbation metrics run the model through (tfjs or ONNX Runtime, as the process's engine choice says). */
  engine: ModelEngine;
  /** Class names (numbers as text when the model came without names, e.g. ImageNet weights). */
  classes: string[];
  /** What turns an image file into this model's input. */
  preprocessing: Preprocessing;
  /** The architecture's default CAM target (pytorch-grad-cam's recommendation). */
  target: CamLayers;
  /** The layers for a torch module path (`layer4.2`, `features.18`…); a UserError naming valid examples when there is none. */
  camLayers(module: string): CamLayers;
  /** tfjs names of the convolution layers, in order (FullGrad's bias sources); empty where the model has no tfjs layers. */
  convLayers: string[];
}

/** A LoadedModel that is a tfjs layers-model (every built-in architecture's). */
export type TfjsLoadedModel = LoadedModel & { model: LayersModel };

export interface ArchitecturePlugin<P = Params> extends PluginInfo {
  kind: 'architecture';
  /**
   * The architecture trains nothing: its `train` imports the model its
   * params name (the onnx architecture's file), so `training:` does not key
   * its tasks and plans call them imports.
   */
  importsOnly?: boolean;
  /** Trains on `data.train` (validating on `data.val`) and writes the model into `ctx.out`. */
  train(ctx: TrainContext<P>): Promise<void>;
  /**
   * Imports a fold's model trained outside salgrid (the model entry's
   * `trained:` file) into `ctx.out` in the layout `train` writes, so
   * predict, load and everything downstream read it unchanged. Checks the
   * model against the fold's data (a head of one output per class) and
   * throws a UserError naming the file where it does not fit. Without it,
   * `trained:` cannot be used with this architecture.
   */
  importTrained?(ctx: ImportContext<P>): Promise<void>;
  /** Class probabilities for `data.test`. */
  predict(ctx: PredictContext<P>): Promise<Prediction[]>;
  /** Loads the model a train task wrote (its artifact folder); architectures that explainers can use provide it. */
  load?(dir: string): Promise<LoadedModel>;
  /**
   * Files whose contents the trained model depends on beyond the data (the
   * pretrained weights `training.pretrained` names), as absolute paths: their
   * hashes key the train task. Throws a MissingInputError saying how to get
   * them when they are absent.
   */
  trainingFiles?(params: P, training: TrainingConfig, manifestDir: string): string[];
}

export interface ExplainContext<P = Params> extends TaskContext<P> {
  data: FoldData;
  model: ModelRef & { plugin: ArchitecturePlugin };
  /** The images to explain (the fold's test set). */
  items: DatasetItem[];
}

export interface ExplainerPlugin<P = Params> extends PluginInfo {
  kind: 'explainer';
  /** Writes one map per item into `ctx.out`, one at a time, skipping maps a previous attempt already wrote. */
  explain(ctx: ExplainContext<P>): Promise<void>;
  /**
   * Files the params name whose contents the maps depend on (a baseline
   * image…), as absolute paths resolved against `manifestDir`: the planner
   * hashes them into the keys of this variant's tasks (as `files`), so
   * replacing a file re-runs them. Throws a MissingInputError naming a file
   * that is absent. Params come as the manifest resolved them.
   */
  paramFiles?(params: P, manifestDir: string): string[] | Promise<string[]>;
}

export type ScoreValue = number | string | boolean | null;
export interface ScoreRow {
  /** The item id. */
  id: string;
  [measure: string]: ScoreValue;
}

export interface ScoreContext<P = Params> extends TaskContext<P> {
  data: FoldData;
  items: DatasetItem[];
  /** Folder of the explain artifact holding the maps. */
  mapsDir: string;
  explainer: { id: string; params: Params };
  /** Present when the metric declares `needsModel`. */
  model?: ModelRef & { plugin: ArchitecturePlugin };
}

export interface MetricPlugin<P = Params> extends PluginInfo {
  kind: 'metric';
  /** Perturbation metrics call the model: they run in the gpu pool. */
  needsModel?: boolean;
  /** One row per item. */
  score(ctx: ScoreContext<P>): Promise<ScoreRow[]>;
  /** Files the params name whose contents the rows depend on, keyed by content as ExplainerPlugin.paramFiles says. */
  paramFiles?(params: P, manifestDir: string): string[] | Promise<string[]>;
}

/** A result table: rows of named values (see RESULT_TABLES in core/report/aggregate.ts). */
export type ResultRow = Record<string, ScoreValue>;

/** Where a chart goes among the report's charts when the manifest does not order them. */
export const DEFAULT_CHART_RANK = 100;

export interface ChartPlugin<P = Params> extends PluginInfo {
  kind: 'chart';
  /** Position in the report when `report.charts` does not order the charts: lower first, then by id (default DEFAULT_CHART_RANK). */
  rank?: number;
  /**
   * A Vega-Lite spec built from the sweep's result tables (by file stem:
   * `summary-over-folds`, `training`, `confusion-total`…; a table is read
   * from disk when first touched), or null when they hold nothing to draw.
   * The spec carries its data inline.
   */
  spec(tables: Record<string, ResultRow[]>, params: P): Record<string, unknown> | null;
}

export type Plugin = DatasetPlugin<any> | ArchitecturePlugin<any> | ExplainerPlugin<any> | MetricPlugin<any> | ChartPlugin<any>;

export type PluginOfKind<K extends PluginKind> = Extract<Plugin, { kind: K }>;
