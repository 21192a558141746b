import path from 'node:path';
import { MissingInputError, isUserError } from '../errors.ts';
import type { ExcludeRule, ResolvedManifest, Variant } from '../manifest/resolve.ts';
import { matchesVariant } from '../manifest/resolve.ts';
import type { Registry } from '../plugins/registry.ts';
import { DEFAULT_CHART_RANK, type ChartPlugin, type FileRecord, type PluginKind, type TrainingConfig } from '../plugins/types.ts';
import { hashFiles } from '../store/file-hashes.ts';
import type { Store } from '../store/store.ts';
import { cacheKey, canonicalJson, sha256, type KeyMaterial } from './keys.ts';
import { STAGES, STAGE_VERSION, type Pool, type Stage } from './stages.ts';

/** Where a task sits in the grid. */
export interface Cell {
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
  /** Reuse already computed data-file hashes (benchmarks, tests). */
  files?: FileRecord[];
}

/** Expands a resolved manifest into the task DAG, with a cache key per task. */
export async function buildPlan(manifest: ResolvedManifest, registry: Registry, store: Store, options: PlanOptions = {}): Promise<Plan> {
  let files = options.files;
  let missingData: string | undefined;
  if (!files) {
    try {
      const dataset = registry.get('dataset', manifest.dataset.source);
      const paths = await dataset.inputFiles(manifest.dataset.params, manifest.dir);
      files = await hashFiles(paths, path.join(store.root, '.file-hashes.json'));
    } catch (error) {
      if (!(error instanceof MissingInputError) && !isUserError(error)) throw error;
      missingData = error.message;
    }
  }
  const trainingFiles = new Map<string, [string, string][]>();
  for (const model of manifest.models) {
    const plugin = registry.get('architecture', model.id);
    try {
      const paths = plugin.trainingFiles?.(model.params, manifest.training as unknown as TrainingConfig, manifest.dir) ?? [];
      if (paths.length > 0) trainingFiles.set(model.label, relativeFiles(await hashFiles(paths, path.join(store.root, '.file-hashes.json')), manifest.dir));
    } catch (error) {
      if (!(error instanceof MissingInputError) && !isUserError(error)) throw error;
      missingData ??= error.message;
    }
  }
  const tasks = expandTasks(manifest, registry, files ?? null, trainingFiles);
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

export function markCached(tasks: Task[], store: Store): void {
  const published = new Map<Stage, Set<string>>();
  for (const stage of STAGES) published.set(stage, store.listKeys(stage));
  for (const task of tasks) task.cached = published.get(task.stage)!.has(task.key);
}

function excluded(rules: ExcludeRule[], cell: Cell, variants: { model?: Variant; explainer?: Variant; metric?: Variant }): boolean {
  return rules.some((rule) => {
    if (rule.fold !== undefined && rule.fold !== cell.fold) return false;
    if (rule.fold !== undefined && cell.fold === undefined) return false;
    for (const field of ['model', 'explainer', 'metric'] as const) {
      if (rule[field] === undefined) continue;
      if (!variants[field] || !matchesVariant(rule[field], variants[field])) return false;
    }
    return true;
  });
}

/** The grid's tasks, pure: the same manifest and data hashes give the same keys. */
export function expandTasks(manifest: ResolvedManifest, registry: Registry, files: FileRecord[] | null, trainingFiles = new Map<string, [string, string][]>()): Task[] {
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

  const fileList = files ? relativeFiles(files, manifest.dir) : undefined;
  // Without data the index key cannot be known: a placeholder (leading zeros) that can never be cached.
  const index = add(
    'index',
    'cpu',
    `index ${manifest.dataset.source}`,
    {},
    { kind: 'dataset', id: manifest.dataset.source, version: manifest.dataset.version },
    { source: manifest.dataset.source, params: manifest.dataset.params },
    {},
    [],
    fileList,
  );
  const { k, seed, stratify, validation } = manifest.folds;
  const split = add('split', 'cpu', `split ${k} folds`, {}, null, { k, seed, stratify, validation }, { index: index.key });
  const folds = manifest.folds.only ?? Array.from({ length: k }, (_, i) => i + 1);
  const { imageSize, training } = { imageSize: manifest.dataset.imageSize, training: manifest.training };
  const cells: (Cell & { key: string; stage: Stage })[] = [];
  const explains: (Cell & { key: string })[] = [];
  // Cell labels go into the aggregate's key (they name table rows); the keys are its inputs.

  for (const model of manifest.models) {
    const modelRef = { id: model.id, params: model.params };
    for (const fold of folds) {
      if (excluded(manifest.exclude, { fold }, { model })) continue;
      const at = `${model.label} fold ${fold}`;
      const base = { index: index.key, split: split.key };
      // Pretrained weights key the train task by content, as data files key the index.
      const train = add('train', 'gpu', `train ${at}`, { model: model.label, fold }, pluginOf(model), { model: modelRef, training, imageSize, fold }, base, [], trainingFiles.get(model.label));
      const predict = add('predict', 'gpu', `predict ${at}`, { model: model.label, fold }, pluginOf(model), { model: modelRef, imageSize, fold }, { ...base, train: train.key });
      cells.push({ key: train.key, stage: 'train', model: model.label, fold });
      cells.push({ key: predict.key, stage: 'predict', model: model.label, fold });
      for (const explainer of manifest.explainers) {
        if (excluded(manifest.exclude, { fold }, { model, explainer })) continue;
        const explainerRef = { id: explainer.id, params: explainer.params };
        const explain = add(
          'explain',
          'gpu',
          `explain ${explainer.label} · ${at}`,
          { model: model.label, fold, explainer: explainer.label },
          pluginOf(explainer),
          { explainer: explainer.params, model: modelRef, imageSize, fold },
          { ...base, train: train.key },
        );
        explains.push({ key: explain.key, model: model.label, fold, explainer: explainer.label });
        for (const metric of manifest.metrics) {
          if (excluded(manifest.exclude, { fold }, { model, explainer, metric })) continue;
          const plugin = registry.get('metric', metric.id);
          const refs: Partial<Record<Stage, string>> = { ...base, explain: explain.key };
          if (plugin.needsModel) refs.train = train.key;
          const cell = { model: model.label, fold, explainer: explainer.label, metric: metric.label };
          const score = add('score', plugin.needsModel ? 'gpu' : 'cpu', `score ${metric.label} · ${explainer.label} · ${at}`, cell, pluginOf(metric), { metric: metric.params, explainer: explainerRef, model: modelRef, imageSize, fold }, refs);
          cells.push({ key: score.key, stage: 'score', ...cell });
        }
      }
    }
  }
  const variants = [...manifest.models, ...manifest.explainers, ...manifest.metrics].map((v) => ({ kind: v.kind, label: v.label, id: v.id, params: v.params }));
  const aggregate = add('aggregate', 'cpu', 'aggregate', {}, null, { cells: cells.map(({ key: _key, ...cell }) => cell), variants }, { split: split.key }, cells.map((c) => c.key));
  // The report reads the explain artifacts of its gallery; which images it shows it decides from the index and split.
  const gallery = manifest.report.gallery > 0 ? explains : [];
  const charts = reportCharts(manifest, registry).map((chart) => ({ id: chart.id, version: chart.version }));
  add(
    'report',
    'cpu',
    'report',
    {},
    null,
    { name: manifest.name, report: manifest.report, charts, gallery: gallery.map(({ key: _key, ...cell }) => cell) },
    { aggregate: aggregate.key, index: index.key, split: split.key },
    gallery.map((c) => c.key),
  );
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
