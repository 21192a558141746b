import path from 'node:path';
import { UserError } from '../errors.ts';
import type { Task } from '../plan/planner.ts';
import type { Stage } from '../plan/stages.ts';
import type { Registry } from '../plugins/registry.ts';
import type { DatasetIndex, ModelRef, Params, Prediction, TaskContext, TrainingConfig } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { hashFiles } from '../store/file-hashes.ts';
import type { Store } from '../store/store.ts';
import { ARTIFACT_FILES, foldData, portablePath, readIndex } from './artifacts.ts';
import { aggregate, type AggregateCell, type VariantRow } from '../report/aggregate.ts';
import type { ReportParams } from '../report/report.ts';
import { splitFolds, type FoldsConfig } from './split.ts';

export interface StageEnv {
  registry: Registry;
  store: Store;
  manifestDir: string;
  signal: AbortSignal;
  progress(done: number, total: number, note?: string): void;
  warn(message: string): void;
}

interface ModelParams {
  model: { id: string; params: Params };
  imageSize: [number, number];
  fold: number;
}

/**
 * Runs one task's stage with its artifact folder `out` (the staging folder).
 * Returns extra facts for meta.json.
 */
export async function runStage(task: Task, env: StageEnv, out: string): Promise<Record<string, unknown>> {
  const input = (stage: Stage) => {
    const key = task.refs[stage];
    if (!key) throw new Error(`task ${task.key} has no ${stage} input`);
    return env.store.dir(stage, key);
  };
  const context = <P>(params: P): TaskContext<P> => ({
    params,
    out,
    manifestDir: env.manifestDir,
    progress: env.progress,
    warn: env.warn,
    signal: env.signal,
    writeFile: (relative, data) => writeFileAtomic(path.join(out, relative), data),
  });
  const params = task.material.params as Record<string, unknown>;

  switch (task.stage) {
    case 'index': {
      const { source, params: datasetParams } = params as { source: string; params: Params };
      const plugin = env.registry.get('dataset', source);
      const files = await hashFiles(await plugin.inputFiles(datasetParams, env.manifestDir), path.join(env.store.root, '.file-hashes.json'));
      const index = await plugin.index({ ...context(datasetParams), files });
      checkIndex(index, source);
      const portable = (file: string) => portablePath(file, out, env.manifestDir);
      for (const item of index.items) {
        item.image = portable(item.image);
        if (item.layerMap) item.layerMap = portable(item.layerMap);
      }
      await writeFileAtomic(path.join(out, ARTIFACT_FILES.index), JSON.stringify(index));
      return { images: index.items.length, classes: index.classes };
    }
    case 'split': {
      const split = splitFolds(readIndex(input('index')), params as unknown as FoldsConfig);
      await writeFileAtomic(path.join(out, ARTIFACT_FILES.split), JSON.stringify(split));
      return { folds: split.folds.length };
    }
    case 'train': {
      const p = params as unknown as ModelParams & { training: TrainingConfig; trained?: string };
      const plugin = env.registry.get('architecture', p.model.id);
      const data = foldData(input('index'), input('split'), p.fold, p.imageSize, env.manifestDir);
      if (p.trained !== undefined) {
        // A model trained elsewhere (`trained:`): imported into the same artifact layout a train task writes.
        if (!plugin.importTrained) throw new UserError(`Architecture ${p.model.id} cannot import models trained elsewhere, so its trained: cannot be used; remove trained: to train it here, or use a built-in architecture or onnx.`);
        const file = path.resolve(env.manifestDir, p.trained);
        await plugin.importTrained({ ...context(p.model.params), data, file });
        return { fold: p.fold, imported: path.basename(file) };
      }
      await plugin.train({ ...context(p.model.params), data, training: p.training });
      return { fold: p.fold, trainImages: data.train.length, valImages: data.val.length };
    }
    case 'predict': {
      const p = params as unknown as ModelParams;
      const plugin = env.registry.get('architecture', p.model.id);
      const data = foldData(input('index'), input('split'), p.fold, p.imageSize, env.manifestDir);
      const predictions = await plugin.predict({ ...context(p.model.params), data, modelDir: input('train') });
      const rows = checkPredictions(predictions, data.test.map((item) => ({ id: item.id, label: item.label })), data.classes.length, p.model.id);
      await writeFileAtomic(path.join(out, ARTIFACT_FILES.predictions), JSON.stringify({ classes: data.classes, rows }));
      return { images: rows.length };
    }
    case 'explain': {
      const p = params as unknown as ModelParams & { explainer: Params };
      const plugin = env.registry.get('explainer', task.plugin!.id);
      const data = foldData(input('index'), input('split'), p.fold, p.imageSize, env.manifestDir);
      await plugin.explain({ ...context(p.explainer), data, items: data.test, model: modelRef(env, p.model, input('train')) });
      return { images: data.test.length };
    }
    case 'score': {
      const p = params as unknown as ModelParams & { metric: Params; explainer: { id: string; params: Params } };
      const plugin = env.registry.get('metric', task.plugin!.id);
      const data = foldData(input('index'), input('split'), p.fold, p.imageSize, env.manifestDir);
      const rows = await plugin.score({
        ...context(p.metric),
        data,
        items: data.test,
        mapsDir: input('explain'),
        explainer: p.explainer,
        model: plugin.needsModel ? modelRef(env, p.model, input('train')) : undefined,
      });
      await writeFileAtomic(path.join(out, ARTIFACT_FILES.rows), JSON.stringify(rows));
      return { rows: rows.length };
    }
    case 'aggregate': {
      const { cells, variants } = params as unknown as { cells: Omit<AggregateCell, 'key'>[]; variants?: VariantRow[] };
      // inputs: the refs (the split, with one dataset) first, then one per cell (with several datasets, their splits among them).
      const cellKeys = task.inputs.slice(Object.keys(task.refs).length);
      const keyed = cells.map((cell, i) => ({ ...cell, key: cellKeys[i] }));
      const splits = keyed.filter((cell) => cell.stage === 'split').map((cell) => ({ dataset: cell.dataset!, dir: env.store.dir('split', cell.key) }));
      const splitSource = splits.length > 0 ? { splits } : { splitDir: input('split') };
      const tables = await aggregate({ cells: keyed.filter((cell) => cell.stage !== 'split'), ...splitSource, variants }, env.store, out, env.warn);
      return { tables };
    }
    case 'report': {
      const p = params as unknown as ReportParams;
      // inputs: the refs (aggregate, index, split) first; with several datasets (refs: aggregate), each one's index and split; then the gallery's explain artifacts.
      const rest = task.inputs.slice(Object.keys(task.refs).length);
      const datasets = p.datasets
        ? p.datasets.map((dataset, d) => ({ dataset, indexDir: env.store.dir('index', rest[2 * d]), splitDir: env.store.dir('split', rest[2 * d + 1]) }))
        : [{ indexDir: input('index'), splitDir: input('split') }];
      const explainDirs = rest.slice(p.datasets ? 2 * p.datasets.length : 0).map((key) => env.store.dir('explain', key));
      const { buildReport } = await import('../report/report.ts');
      return buildReport({ params: p, aggregateDir: input('aggregate'), datasets, explainDirs, manifestDir: env.manifestDir, registry: env.registry, out, warn: env.warn });
    }
  }
}

function modelRef(env: StageEnv, model: { id: string; params: Params }, dir: string): ModelRef & { plugin: ReturnType<Registry['get']> & { kind: 'architecture' } } {
  return { id: model.id, params: model.params, dir, plugin: env.registry.get('architecture', model.id) };
}

function checkIndex(index: DatasetIndex, source: string): void {
  if (!index.classes?.length) throw new UserError(`dataset ${source} found no classes; check its folder layout.`);
  const ids = new Set<string>();
  for (const item of index.items) {
    if (ids.has(item.id)) throw new UserError(`dataset ${source} lists image ${item.id} twice; image ids must be unique.`);
    ids.add(item.id);
    if (!(item.label >= 0 && item.label < index.classes.length)) throw new Error(`dataset ${source} gave image ${item.id} label ${item.label} outside its ${index.classes.length} classes`);
  }
  index.classes.forEach((name, label) => {
    if (!index.items.some((item) => item.label === label)) throw new UserError(`class "${name}" of dataset ${source} has no images; add images to it or remove its folder.`);
  });
}

function checkPredictions(predictions: Prediction[], expected: { id: string; label: number }[], classes: number, plugin: string) {
  const byId = new Map(predictions.map((p) => [p.id, p]));
  return expected.map(({ id, label }) => {
    const prediction = byId.get(id);
    if (!prediction) throw new Error(`architecture ${plugin} returned no prediction for test image ${id}`);
    if (prediction.probabilities.length !== classes) throw new Error(`architecture ${plugin} returned ${prediction.probabilities.length} probabilities for ${classes} classes`);
    let predicted = 0;
    prediction.probabilities.forEach((p, i) => {
      if (p > prediction.probabilities[predicted]) predicted = i;
    });
    return { id, label, predicted, probabilities: prediction.probabilities };
  });
}
