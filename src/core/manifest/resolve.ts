import path from 'node:path';
import stringify from 'safe-stable-stringify';
import type { Registry } from '../plugins/registry.ts';
import type { JsonSchema, Params, PluginKind, TrainingConfig } from '../plugins/types.ts';
import { createAjv, problemsFromAjv, type ValidateFunction } from './ajv.ts';
import { expandDataset, type DatasetVariant, type ResolvedDataset } from './dataset.ts';
import { emptyAxisProblems, expandAxes, findAxes, labelVariants } from './grid.ts';
import { PLUGIN_LISTS, manifestSchema } from './schema.ts';
import { ManifestSource, manifestError, type ManifestProblem } from './source.ts';
import { closest } from './suggest.ts';
import { trainedProblems, type TrainedModels } from './trained.ts';
import type { SlurmConfig } from '../exec/slurm/config.ts';
import type { BackendRequest } from '../tensor/backend-names.ts';
import type { DecisionConfig } from '../report/decision.ts';

export interface ReportConfig {
  /** Chart plugin ids in order; empty: every registered chart. */
  charts: string[];
  /** Test images per class in the gallery. */
  gallery: number;
  decision: DecisionConfig;
}

/** One cell value along a plugin axis of the grid: a plugin with fully resolved params. */
export interface Variant {
  kind: PluginKind;
  id: string;
  version: string;
  /** Unique among the variants of its kind; names it in tables, charts and plans. */
  label: string;
  params: Params;
  /** Where the entry is in the manifest. */
  pointer: string;
  /** Models only: fold models trained elsewhere, imported instead of trained. */
  trained?: TrainedModels;
}

export interface ExcludeRule {
  dataset?: string;
  model?: string;
  explainer?: string;
  metric?: string;
  fold?: number;
}

export interface ExecutionConfig {
  backend: BackendRequest;
  /** Intra-op threads of each tensor worker's onnx engine. */
  threads: 'auto' | number;
  allowSoftwareAdapter: boolean;
  gpus: 'auto' | number;
  workers: { gpu: number | 'auto'; cpu: number };
  retries: number;
  executor: 'local' | 'slurm';
  slurm: SlurmConfig;
}

export interface ResolvedManifest {
  file: string;
  dir: string;
  name: string;
  plugins: string[];
  /** The dataset and its variants (several when `dataset.params` has grid axes). */
  dataset: ResolvedDataset;
  folds: { k: number; seed: number; stratify: boolean; validation: number; only?: number[] };
  training: TrainingConfig;
  models: Variant[];
  explainers: Variant[];
  metrics: Variant[];
  exclude: ExcludeRule[];
  execution: ExecutionConfig;
  report: ReportConfig;
  /** The whole manifest with defaults filled in, as `salgrid plan --json` shows it. */
  data: Record<string, unknown>;
}

const compiled = new WeakMap<object, ValidateFunction>();
const ajv = createAjv();

function validatorFor(schema: JsonSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  return validate;
}

const coreSchema = manifestSchema();

/**
 * Reads, validates and expands a manifest. Every problem is collected and
 * reported at once as file:line:col with a hint; nothing here touches data.
 */
export function resolveManifest(source: ManifestSource, registry: Registry): ResolvedManifest {
  const data = source.data() as Record<string, unknown>;
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw manifestError(source, [{ pointer: '', message: 'a manifest must be a YAML mapping (name:, dataset:, models:, …)' }]);
  }
  const validateCore = validatorFor(coreSchema);
  const problems: ManifestProblem[] = [];
  if (!validateCore(data)) problems.push(...problemsFromAjv(validateCore.errors));

  const dataset = expandDataset((data.dataset ?? {}) as Parameters<typeof expandDataset>[0], registry, validatorFor, problems);

  const variants: Record<string, Variant[]> = {};
  for (const [section, kind] of Object.entries(PLUGIN_LISTS)) {
    variants[section] = expandSection(data[section], section, kind, registry, problems);
  }
  const exclude = ((data.exclude ?? []) as ExcludeRule[]).filter((rule) => typeof rule === 'object' && rule !== null);
  checkExcludes(exclude, variants, dataset.variants, problems);
  const report = (data.report ?? {}) as Partial<ReportConfig>;
  for (const [i, id] of (Array.isArray(report.charts) ? report.charts : []).entries()) {
    if (typeof id === 'string') lookup(registry, 'chart', id, `/report/charts/${i}`, problems);
  }
  const folds = (data.folds ?? {}) as ResolvedManifest['folds'];
  for (const [i, fold] of (folds.only ?? []).entries()) {
    if (typeof fold === 'number' && fold > folds.k) problems.push({ pointer: `/folds/only/${i}`, message: `fold ${fold} does not exist with k = ${folds.k}; use 1…${folds.k}` });
  }
  const foldCount = Array.isArray(folds.only) ? new Set(folds.only).size : folds.k;
  for (const model of variants.models) {
    if (!model.trained) continue;
    model.trained.where = source.where(model.trained.pointer);
    // An entry with grid axes gives several variants of one pattern: one report per entry.
    if (variants.models.find((other) => other.pointer === model.pointer) === model) problems.push(...trainedProblems(model.trained.pattern, model.trained.pointer, foldCount));
  }

  if (problems.length > 0) throw manifestError(source, problems);

  const resolvedData = structuredClone(data);
  for (const section of Object.keys(PLUGIN_LISTS)) {
    resolvedData[section] = variants[section].map((v) => ({ id: v.id, label: v.label, params: v.params, ...(v.trained ? { trained: v.trained.pattern } : {}) }));
  }
  if (dataset.variants.length > 1) (resolvedData.dataset as Record<string, unknown>).variants = dataset.variants;
  return {
    file: source.file,
    dir: path.dirname(path.resolve(source.file)),
    name: data.name as string,
    plugins: (data.plugins ?? []) as string[],
    dataset,
    folds,
    training: data.training as TrainingConfig,
    models: variants.models,
    explainers: variants.explainers,
    metrics: variants.metrics,
    exclude,
    execution: data.execution as ExecutionConfig,
    report: data.report as ResolvedManifest['report'],
    data: resolvedData,
  };
}

function lookup(registry: Registry, kind: PluginKind, id: string, pointer: string, problems: ManifestProblem[]) {
  if (registry.has(kind, id)) return registry.get(kind, id);
  problems.push({ pointer, message: registry.unknownMessage(kind, id) });
  return undefined;
}

interface Entry {
  id: string;
  name?: string;
  params: Params;
  trained?: string;
}

function expandSection(list: unknown, section: string, kind: PluginKind, registry: Registry, problems: ManifestProblem[]): Variant[] {
  if (!Array.isArray(list)) return [];
  const drafts: (Omit<Variant, 'label'> & { name?: string; propertyOrder: string[] })[] = [];
  list.forEach((raw: unknown, index) => {
    const pointer = `/${section}/${index}`;
    if (typeof raw !== 'string' && (typeof raw !== 'object' || raw === null || typeof (raw as Entry).id !== 'string')) return;
    const entry: Entry = typeof raw === 'string' ? { id: raw, params: {} } : { ...(raw as Entry), params: (raw as Entry).params ?? {} };
    const plugin = lookup(registry, kind, entry.id, typeof raw === 'string' ? pointer : `${pointer}/id`, problems);
    if (!plugin) return;
    const { fixed, axes } = findAxes(entry.params, plugin.params);
    problems.push(...emptyAxisProblems(axes, `${pointer}/params`));
    const validate = validatorFor(plugin.params);
    for (const variant of expandAxes(fixed, axes)) {
      if (!validate(variant.params)) problems.push(...problemsFromAjv(validate.errors, `${pointer}/params`, variant.mapPointer));
      drafts.push({
        kind,
        id: entry.id,
        version: plugin.version,
        name: entry.name,
        params: variant.params,
        pointer,
        ...(typeof entry.trained === 'string' ? { trained: { pattern: entry.trained, pointer: `${pointer}/trained`, where: '' } } : {}),
        propertyOrder: Object.keys((plugin.params.properties ?? {}) as object),
      });
    }
  });
  const labels = labelVariants(drafts);
  const seen = new Map<string, string>();
  // Entries that differ only by name would plan the very same tasks twice (same keys).
  const sameWork = new Map<string, string>();
  const variants: Variant[] = [];
  drafts.forEach((draft, i) => {
    const label = labels[i];
    const previous = seen.get(label);
    if (previous !== undefined) {
      problems.push({ pointer: draft.pointer, message: `this entry repeats ${section.slice(0, -1)} "${label}" of ${previous}; remove it, or give it a different name: or params` });
      return;
    }
    const work = stringify([draft.id, draft.params, draft.trained?.pattern ?? null]) ?? '';
    const twin = sameWork.get(work);
    if (twin !== undefined) {
      problems.push({ pointer: draft.pointer, message: `this entry is ${section.slice(0, -1)} "${twin}" again under another name (same id and params${draft.trained ? ' and trained:' : ''}), so it would compute the very same tasks; remove it, or change its params` });
      return;
    }
    sameWork.set(work, label);
    seen.set(label, draft.pointer);
    variants.push({ kind: draft.kind, id: draft.id, version: draft.version, label, params: draft.params, pointer: draft.pointer, ...(draft.trained ? { trained: draft.trained } : {}) });
  });
  return variants;
}

function checkExcludes(rules: ExcludeRule[], variants: Record<string, Variant[]>, datasets: DatasetVariant[], problems: ManifestProblem[]): void {
  const axes = { dataset: datasets.map((d) => ({ label: d.label, id: d.label })), model: variants.models, explainer: variants.explainers, metric: variants.metrics } as const;
  rules.forEach((rule, i) => {
    for (const field of ['dataset', 'model', 'explainer', 'metric'] as const) {
      const value = rule[field];
      if (typeof value !== 'string') continue;
      const options = axes[field];
      if (!options.some((v) => v.label === value || v.id === value)) {
        const known = [...new Set(options.flatMap((v) => [v.label, v.id]))];
        const guess = closest(value, known);
        problems.push({
          pointer: `/exclude/${i}/${field}`,
          message: `no ${field} "${value}" in this grid${guess ? `; did you mean "${guess}"?` : ''} (known: ${known.join(', ') || 'none'})`,
        });
      }
    }
  });
  // A rule naming only a dataset variant leaves out all of it; leaving out every one leaves no sweep.
  const whole = rules.map((rule, i) => ({ rule, i })).filter(({ rule }) => typeof rule.dataset === 'string' && Object.keys(rule).length === 1);
  if (datasets.length > 0 && whole.length > 0 && datasets.every((d) => whole.some(({ rule }) => rule.dataset === d.label))) {
    problems.push({ pointer: `/exclude/${whole.at(-1)!.i}`, message: 'these exclude rules leave out every dataset variant; keep at least one' });
  }
}

/** Whether a rule value names a dataset variant (by its label). */
export function matchesDataset(value: string | undefined, dataset: DatasetVariant): boolean {
  return value === undefined || value === dataset.label;
}

/** Whether a rule value names a variant (by label or plugin id). */
export function matchesVariant(value: string | undefined, variant: Variant | undefined): boolean {
  return value === undefined || (variant !== undefined && (value === variant.label || value === variant.id));
}
