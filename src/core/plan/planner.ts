import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { MissingInputError, isUserError } from '../errors.ts';
import { layersModelFiles } from '../io/layers-model-files.ts';
import type { DatasetVariant } from '../manifest/dataset.ts';
import type { ExcludeRule, ResolvedManifest, Variant } from '../manifest/resolve.ts';
import { matchesDataset, matchesVariant } from '../manifest/resolve.ts';
import { trainedPath } from '../manifest/trained.ts';
import type { Registry } from '../plugins/registry.ts';
import { DEFAULT_CHART_RANK, type ChartPlugin, type FileRecord, type PluginKind, type TrainingConfig } from '../plugins/types.ts';
import { hashFiles } from '../store/file-hashes.ts';
import type { Store } from '../store/store.ts';
import { cacheKey, canonicalJson, sha256, type KeyMaterial } from './keys.ts';
import { STAGES, STAGE_VERSION, type Pool, type Stage } from './stages.ts';

/** Where a task sits in the grid. */
export interface Cell {
  /** The dataset variant's label; only when the dataset has several. */
  dataset?: string;
  model?: string;
  fold?: number;
  explainer?: string;
  metric?: string;
}

export interface Task {
  key: string;
  stage: Stage;
  pool: Pool;
  /** Keys of the tasks whose artifacts this one reads. */
  inputs: string[];
  /** The same inputs by stage, for the stage runner. */
  refs: Partial<Record<Stage, string>>;
  label: string;
  cell: Cell;
  plugin: { kind: PluginKind; id: string; version: string } | null;
  material: KeyMaterial;
  cached: boolean;
}

export interface StageSummary {
  stage: Stage;
  total: number;
  cached: number;
  toRun: number;
}

export interface Plan {
  name: string;
  manifestFile: string;
  manifestDir: string;
  plugins: string[];
  /** Set when the dataset is absent: the plan still counts tasks, but nothing can run. */
  missingData?: string;
  tasks: Task[];
}

export interface PlanOptions {
  /** Reuse already computed data-file hashes (benchmarks, tests), the same for every dataset variant. */
  files?: FileRecord[];
}

/** The data files of every dataset variant (one list for all), or of each variant; null: missing, so the index key cannot be known. */
export type DatasetFiles = FileRecord[] | null | ((variant: DatasetVariant, index: number) => FileRecord[] | null);

/** Expands a resolved manifest into the task DAG, with a cache key per task. */
export async function buildPlan(manifest: ResolvedManifest, registry: Registry, store: Store, options: PlanOptions = {}): Promise<Plan> {
  let missingData: string | undefined;
  const files: (FileRecord[] | null)[] = [];
  const several = manifest.dataset.variants.length > 1;
  for (const variant of manifest.dataset.variants) {
    if (options.files) {
      files.push(options.files);
      continue;
    }
    try {
      const dataset = registry.get('dataset', manifest.dataset.source);
      const paths = await dataset.inputFiles(variant.params, manifest.dir);
      files.push(await hashFiles(paths, path.join(store.root, '.file-hashes.json')));
    } catch (error) {
      if (!(error instanceof MissingInputError) && !isUserError(error)) throw error;
      missingData ??= several ? `dataset ${variant.label}: ${error.message}` : error.message;
      files.push(null);
    }
  }
  const trainingFiles = new Map<string, [string, string][]>();
  for (const model of manifest.models) {
    if (model.trained) continue; // imported, not trained: training.pretrained does not apply
    const plugin = registry.get('architecture', model.id);
    try {
      const paths = plugin.trainingFiles?.(model.params, manifest.training as unknown as TrainingConfig, manifest.dir) ?? [];
      if (paths.length > 0) trainingFiles.set(model.label, relativeFiles(await hashFiles(paths, path.join(store.root, '.file-hashes.json')), manifest.dir));
    } catch (error) {
      if (!(error instanceof MissingInputError) && !isUserError(error)) throw error;
      missingData ??= error.message;
    }
  }
  const paramFiles = await variantParamFiles(manifest, registry, path.join(store.root, '.file-hashes.json'));
  missingData ??= paramFiles.missing;
  const trained = await trainedModelFiles(manifest, path.join(store.root, '.file-hashes.json'));
  missingData ??= trained.missing;
  const tasks = expandTasks(manifest, registry, (_, i) => files[i], trainingFiles, paramFiles.files, trained.files);
  markCached(tasks, store);
  return {
    name: manifest.name,
    manifestFile: path.resolve(manifest.file),
    manifestDir: manifest.dir,
    plugins: manifest.plugins,
    missingData,
    tasks,
  };
}

/**
 * Files that explainer and metric params name (a baseline image…), hashed
 * like the data files, by variant: `explainer <label>` / `metric <label>`.
 * They key that variant's tasks by content; a missing one is the plan's
 * missing data.
 */
async function variantParamFiles(manifest: ResolvedManifest, registry: Registry, memoFile: string): Promise<{ files: Map<string, [string, string][]>; missing?: string }> {
  const files = new Map<string, [string, string][]>();
  let missing: string | undefined;
  const variants = [...manifest.explainers.map((v) => ({ v, plugin: registry.get('explainer', v.id) })), ...manifest.metrics.map((v) => ({ v, plugin: registry.get('metric', v.id) }))];
  for (const { v, plugin } of variants) {
    if (!plugin.paramFiles) continue;
    try {
      const paths = [...new Set(await plugin.paramFiles(v.params, manifest.dir))];
      if (paths.length > 0) files.set(`${plugin.kind} ${v.label}`, relativeFiles(await hashFiles(paths, memoFile), manifest.dir));
    } catch (error) {
      if (!(error instanceof MissingInputError) && !isUserError(error)) throw error;
      missing ??= error.message;
    }
  }
  return { files, missing };
}

/**
 * The files of each fold's model that `trained:` names, hashed like the data
 * files, by `trainedKey(label, fold)`: they key that fold's import task. A
 * missing one is the plan's missing data, located at the `trained:` field.
 */
async function trainedModelFiles(manifest: ResolvedManifest, memoFile: string): Promise<{ files: Map<string, [string, string][]>; missing?: string }> {
  const files = new Map<string, [string, string][]>();
  let missing: string | undefined;
  for (const model of manifest.models) {
    if (!model.trained) continue;
    const { pattern, where, pointer } = model.trained;
    const absent: { fold: number; file: string }[] = [];
    for (const fold of sweepFolds(manifest)) {
      if (manifest.dataset.variants.every((dataset) => excluded(manifest.exclude, { fold }, { dataset, model }))) continue;
      const file = trainedPath(pattern, model.label, fold);
      const full = path.resolve(manifest.dir, file);
      if (!existsSync(full)) {
        absent.push({ fold, file });
        continue;
      }
      try {
        files.set(trainedKey(model.label, fold), relativeFiles(await hashFiles(modelFiles(full), memoFile), manifest.dir));
      } catch (error) {
        if (!isUserError(error)) throw error;
        missing ??= `${where}: ${pointer}: the trained model of ${model.label} for fold ${fold} cannot be read: ${error.message}`;
      }
    }
    if (absent.length > 0) {
      const [first, ...more] = absent;
      const others = more.length > 0 ? ` (nor for fold${more.length > 1 ? 's' : ''} ${more.map((a) => a.fold).join(', ')})` : '';
      missing ??= `${where}: ${pointer}: no trained model of ${model.label} for fold ${first.fold}${others}: ${first.file} (${path.resolve(manifest.dir, first.file)}) does not exist; put each fold's model there, or fix the path.`;
    }
  }
  return { files, missing };
}

/**
 * A tfjs model (its folder, its model.json, or a train artifact holding it
 * in model/) is model.json and the weights files it lists; any other model
 * (a state dict, an .onnx) is its one file.
 */
function modelFiles(file: string): string[] {
  if (file.endsWith('.json')) return layersModelFiles(file);
  if (!statSync(file).isDirectory()) return [file];
  const inArtifact = path.join(file, 'model');
  return layersModelFiles(existsSync(path.join(inArtifact, 'model.json')) ? inArtifact : file);
}

/** The key of one fold's trained model files in the map `expandTasks` takes. */
export function trainedKey(model: string, fold: number): string {
  return `${model} fold ${fold}`;
}

/** The folds the sweep runs, 1-based. */
function sweepFolds(manifest: Pick<ResolvedManifest, 'folds'>): number[] {
  const { k, only } = manifest.folds;
  return only ?? Array.from({ length: k }, (_, i) => i + 1);
}

export function markCached(tasks: Task[], store: Store): void {
  const published = new Map<Stage, Set<string>>();
  for (const stage of STAGES) published.set(stage, store.listKeys(stage));
  for (const task of tasks) task.cached = published.get(task.stage)!.has(task.key);
}

function excluded(rules: ExcludeRule[], cell: Cell, variants: { dataset: DatasetVariant; model?: Variant; explainer?: Variant; metric?: Variant }): boolean {
  return rules.some((rule) => {
    if (rule.fold !== undefined && rule.fold !== cell.fold) return false;
    if (rule.fold !== undefined && cell.fold === undefined) return false;
    if (!matchesDataset(rule.dataset, variants.dataset)) return false;
    for (const field of ['model', 'explainer', 'metric'] as const) {
      if (rule[field] === undefined) continue;
      if (!variants[field] || !matchesVariant(rule[field], variants[field])) return false;
    }
    return true;
  });
}

/** The grid's tasks, pure: the same manifest and data hashes give the same keys. */
export function expandTasks(
  manifest: ResolvedManifest,
  registry: Registry,
  files: DatasetFiles,
  trainingFiles = new Map<string, [string, string][]>(),
  paramFiles = new Map<string, [string, string][]>(),
  trainedFiles = new Map<string, [string, string][]>(),
): Task[] {
  const tasks: Task[] = [];
  const add = (stage: Stage, pool: Pool, label: string, cell: Cell, plugin: Task['plugin'], params: unknown, refs: Partial<Record<Stage, string>>, extraInputs: string[] = [], fileList?: [string, string][]) => {
    const inputs = [...Object.values(refs), ...extraInputs];
    const material: KeyMaterial = { stage, version: STAGE_VERSION[stage], plugin: plugin ? `${plugin.id}@${plugin.version}` : null, params, inputs };
    if (fileList) material.files = fileList;
    const key = fileList || stage !== 'index' ? cacheKey(material) : `${'0'.repeat(8)}${sha256(canonicalJson(material)).slice(8)}`;
    const task: Task = { key, stage, pool, inputs, refs, label, cell, plugin, material, cached: false };
    tasks.push(task);
    return task;
  };
  const pluginOf = (v: { kind: PluginKind; id: string; version: string }) => ({ kind: v.kind, id: v.id, version: v.version });

  const { k, seed, stratify, validation } = manifest.folds;
  const folds = sweepFolds(manifest);
  const { imageSize, training } = { imageSize: manifest.dataset.imageSize, training: manifest.training };
  const cells: (Cell & { key: string; stage: Stage })[] = [];
  const explains: (Cell & { key: string })[] = [];
  // Cell labels go into the aggregate's key (they name table rows); the keys are its inputs.
  // With one dataset variant, labels, cells and keys are those of a dataset without axes.
  const several = manifest.dataset.variants.length > 1;
  const data: { variant: DatasetVariant; index: string; split: string }[] = [];

  manifest.dataset.variants.forEach((dataset, d) => {
    if (excluded(manifest.exclude, {}, { dataset })) return;
    const on = several ? { dataset: dataset.label } : {};
    const suffix = several ? ` · ${dataset.label}` : '';
    const datasetFiles = typeof files === 'function' ? files(dataset, d) : files;
    const fileList = datasetFiles ? relativeFiles(datasetFiles, manifest.dir) : undefined;
    // Without data the index key cannot be known: a placeholder (leading zeros) that can never be cached.
    const index = add(
      'index',
      'cpu',
      `index ${manifest.dataset.source}${suffix}`,
      { ...on },
      { kind: 'dataset', id: manifest.dataset.source, version: manifest.dataset.version },
      { source: manifest.dataset.source, params: dataset.params },
      {},
      [],
      fileList,
    );
    const split = add('split', 'cpu', `split ${k} folds${suffix}`, { ...on }, null, { k, seed, stratify, validation }, { index: index.key });
    data.push({ variant: dataset, index: index.key, split: split.key });
    if (several) cells.push({ key: split.key, stage: 'split', ...on });

    for (const model of manifest.models) {
      const modelRef = { id: model.id, params: model.params };
      for (const fold of folds) {
        if (excluded(manifest.exclude, { fold }, { dataset, model })) continue;
        const at = `${model.label}${suffix} fold ${fold}`;
        const base = { index: index.key, split: split.key };
        // Pretrained weights key the train task by content, as data files key the index. A model
        // trained elsewhere is imported instead: keyed by its fold's files, not by training:.
        // An architecture that only imports a given model (onnx with its file param) is not keyed by training: either.
        const importsOnly = registry.get('architecture', model.id).importsOnly === true;
        const trainParams = model.trained
          ? { model: modelRef, imageSize, fold, trained: trainedPath(model.trained.pattern, model.label, fold) }
          : importsOnly ? { model: modelRef, imageSize, fold } : { model: modelRef, training, imageSize, fold };
        const trainFiles = model.trained ? trainedFiles.get(trainedKey(model.label, fold)) : trainingFiles.get(model.label);
        const verb = model.trained || importsOnly ? 'import' : 'train';
        const train = add('train', 'gpu', `${verb} ${at}`, { ...on, model: model.label, fold }, pluginOf(model), trainParams, base, [], trainFiles);
        const predict = add('predict', 'gpu', `predict ${at}`, { ...on, model: model.label, fold }, pluginOf(model), { model: modelRef, imageSize, fold }, { ...base, train: train.key });
        cells.push({ key: train.key, stage: 'train', ...on, model: model.label, fold });
        cells.push({ key: predict.key, stage: 'predict', ...on, model: model.label, fold });
        for (const explainer of manifest.explainers) {
          if (excluded(manifest.exclude, { fold }, { dataset, model, explainer })) continue;
          const explainerRef = { id: explainer.id, params: explainer.params };
          const explain = add(
            'explain',
            'gpu',
            `explain ${explainer.label} · ${at}`,
            { ...on, model: model.label, fold, explainer: explainer.label },
            pluginOf(explainer),
            { explainer: explainer.params, model: modelRef, imageSize, fold },
            { ...base, train: train.key },
            [],
            paramFiles.get(`explainer ${explainer.label}`),
          );
          explains.push({ key: explain.key, ...on, model: model.label, fold, explainer: explainer.label });
          for (const metric of manifest.metrics) {
            if (excluded(manifest.exclude, { fold }, { dataset, model, explainer, metric })) continue;
            const plugin = registry.get('metric', metric.id);
            const refs: Partial<Record<Stage, string>> = { ...base, explain: explain.key };
            if (plugin.needsModel) refs.train = train.key;
            const cell = { ...on, model: model.label, fold, explainer: explainer.label, metric: metric.label };
            const score = add('score', plugin.needsModel ? 'gpu' : 'cpu', `score ${metric.label} · ${explainer.label} · ${at}`, cell, pluginOf(metric), { metric: metric.params, explainer: explainerRef, model: modelRef, imageSize, fold }, refs, [], paramFiles.get(`metric ${metric.label}`));
            cells.push({ key: score.key, stage: 'score', ...cell });
          }
        }
      }
    }
  });
  const variants: { kind: PluginKind; label: string; id: string; params: unknown }[] = [...manifest.models, ...manifest.explainers, ...manifest.metrics].map((v) => ({ kind: v.kind, label: v.label, id: v.id, params: v.params }));
  if (several) variants.unshift(...data.map(({ variant }) => ({ kind: 'dataset' as const, label: variant.label, id: manifest.dataset.source, params: variant.params })));
  const cellList = cells.map(({ key: _key, ...cell }) => cell);
  // One dataset: its split is the aggregate's ref; several: each split is a cell of the aggregate.
  const aggregate = add('aggregate', 'cpu', 'aggregate', {}, null, { cells: cellList, variants }, several ? {} : { split: data[0]?.split }, cells.map((c) => c.key));
  // The report reads the explain artifacts of its gallery; which images it shows it decides from the index and split.
  const gallery = manifest.report.gallery > 0 ? explains : [];
  const charts = reportCharts(manifest, registry).map((chart) => ({ id: chart.id, version: chart.version }));
  const reportParams = { name: manifest.name, report: manifest.report, charts, gallery: gallery.map(({ key: _key, ...cell }) => cell) };
  if (several) {
    // Several datasets: their index and split keys follow the aggregate's, in the order of `datasets`.
    add('report', 'cpu', 'report', {}, null, { ...reportParams, datasets: data.map((d) => d.variant.label) }, { aggregate: aggregate.key }, [...data.flatMap((d) => [d.index, d.split]), ...gallery.map((c) => c.key)]);
  } else {
    add('report', 'cpu', 'report', {}, null, reportParams, { aggregate: aggregate.key, index: data[0]?.index, split: data[0]?.split }, gallery.map((c) => c.key));
  }
  return tasks;
}

/** The chart plugins the report draws, in order: the manifest's `report.charts`, or every registered chart by rank. */
export function reportCharts(manifest: Pick<ResolvedManifest, 'report'>, registry: Registry): ChartPlugin[] {
  if (manifest.report.charts.length > 0) return manifest.report.charts.map((id) => registry.get('chart', id));
  return (registry.all('chart') as ChartPlugin[]).sort((a, b) => (a.rank ?? DEFAULT_CHART_RANK) - (b.rank ?? DEFAULT_CHART_RANK) || a.id.localeCompare(b.id));
}

/**
 * Files as key material, with their hashes: manifest-relative paths, so a
 * project can move; a file outside the project (the weights store) by its
 * last two path segments, so the key does not depend on the home folder.
 */
function relativeFiles(files: FileRecord[], dir: string): [string, string][] {
  return files.map((f) => {
    const relative = path.relative(dir, f.path);
    const name = relative.startsWith('..') || path.isAbsolute(relative) ? path.join('@', path.basename(path.dirname(f.path)), path.basename(f.path)) : relative;
    return [name.split(path.sep).join('/'), f.sha256];
  });
}

export function summarize(plan: Plan): StageSummary[] {
  return STAGES.map((stage) => {
    const of = plan.tasks.filter((t) => t.stage === stage);
    const cached = of.filter((t) => t.cached).length;
    return { stage, total: of.length, cached, toRun: of.length - cached };
  });
}
