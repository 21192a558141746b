/**
 * What the chart plugins share: which metric plugin and which of its columns
 * each chart reads (the one place to align with src/plugins/metrics), and
 * helpers that pick those rows out of the result tables by plugin id, so a
 * metric entry renamed in the manifest (`name:`) or split into variants is
 * still found.
 */
import type { ChartPlugin, ResultRow } from '../../core/plugins/types.ts';

/** Metric ids and the column names of their rows, as the metric plugins write them. */
export const METRICS = {
  hitRate: { id: 'hit-rate', measures: ['graded', 'binary'] },
  coverage: { id: 'layer-coverage', top: 'top', background: 'background', weighted: 'weighted' },
  /** `iou@<threshold>:<layer level>`, e.g. `iou@0.95:255`. */
  iou: { id: 'iou', column: /^iou@([0-9.]+):(.+)$/ },
  /** darken: `drop`, `increase`; zero: `drop@<t>`, `increase@<t>` per threshold. */
  confidence: { id: 'confidence-change', drop: 'drop', increase: 'increase', perThreshold: /^(drop|increase)@([0-9.]+)$/ },
  /** `auc` and the curve `score@<fraction perturbed>`. */
  deletion: { id: 'deletion', auc: 'auc', step: /^score@([0-9.]+)$/ },
  insertion: { id: 'insertion', auc: 'auc', step: /^score@([0-9.]+)$/ },
} as const;

/** The attribution explainers' param that keeps positive or negative attributions (Captum's sign). */
export const SIGN_PARAM = 'sign';

export type Tables = Record<string, ResultRow[]>;
export type Spec = Record<string, unknown>;

export interface VariantInfo {
  label: string;
  id: string;
  params: Record<string, unknown>;
}

type VariantKind = 'dataset' | 'architecture' | 'explainer' | 'metric';

/** The variants of a kind in manifest order, from the `variants` table. */
export function variants(tables: Tables, kind: VariantKind): VariantInfo[] {
  return (tables.variants ?? [])
    .filter((v) => v.kind === kind)
    .map((v) => ({ label: String(v.label), id: String(v.id), params: JSON.parse(String(v.params ?? '{}')) as Record<string, unknown> }));
}

/**
 * The model a row is about, as charts name it: its label, with the dataset
 * variant when the sweep has several (`small-cnn · shortcut`), so each
 * model × dataset variant is a series, bar or panel of its own.
 */
export function modelOf(row: ResultRow): string {
  return row.dataset === undefined || row.dataset === null ? String(row.model) : `${String(row.model)} · ${String(row.dataset)}`;
}

/** Labels of a kind in manifest order (for sorting axes and legends); labels missing from the table follow, sorted. Models come as modelOf names them, each model's dataset variants together. */
export function order(tables: Tables, kind: 'architecture' | 'explainer' | 'metric', present: Iterable<string>): string[] {
  const datasets = kind === 'architecture' ? variants(tables, 'dataset').map((v) => v.label) : [];
  const labels = variants(tables, kind).map((v) => v.label);
  const known = datasets.length > 0 ? labels.flatMap((model) => datasets.map((dataset) => modelOf({ model, dataset }))) : labels;
  const seen = new Set(present);
  return [...known.filter((label) => seen.has(label)), ...[...seen].filter((label) => !known.includes(label)).sort()];
}

/** A summary row of one metric's variant: mean ± sd (over folds, or over images) of one measure of one model × explainer. */
export interface MetricRow {
  /** As modelOf names it: with the dataset variant when there are several. */
  model: string;
  explainer: string;
  /** The metric's label. */
  metric: string;
  measure: string;
  mean: number | null;
  sd: number | null;
  /** Folds with a mean (summary-over-folds) or images (summary), when the table has it. */
  count: number | null;
  variant: VariantInfo;
}

/** Rows of a summary table (default: mean ± sd over folds) whose metric is a variant of plugin `id`. */
export function metricRows(tables: Tables, id: string, table = 'summary-over-folds'): MetricRow[] {
  const metricVariants = variants(tables, 'metric');
  const byLabel = new Map(metricVariants.map((v) => [v.label, v]));
  return (tables[table] ?? []).flatMap((row) => {
    const label = String(row.metric);
    // Without a variants table (results of an older salgrid), a label equal to the id still matches.
    const variant = byLabel.get(label) ?? (metricVariants.length === 0 && label === id ? { label, id, params: {} } : undefined);
    if (!variant || variant.id !== id) return [];
    return [{ model: modelOf(row), explainer: String(row.explainer), metric: label, measure: String(row.measure), mean: num(row.mean), sd: num(row.sd), count: num(row.folds ?? row.n), variant }];
  });
}

/** Number or null. */
export function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Mean ± sd as the ends of an error bar (both the mean where sd is unknown). */
export function errorBar(mean: number, sd: number | null): { lo: number; hi: number } {
  return sd === null ? { lo: mean, hi: mean } : { lo: mean - sd, hi: mean + sd };
}

/** The Vega-Lite head every chart spec starts with. */
export function specHead(title: string, subtitle?: string): Spec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: subtitle ? { text: title, subtitle, anchor: 'start' } : { text: title, anchor: 'start' },
    config: { view: { stroke: '#ddd' }, axis: { labelLimit: 180 }, legend: { labelLimit: 220 } },
  };
}

/** A label for a series that stays unique when a metric comes in several variants: the explainer, plus the metric label when it must tell them apart. */
export function seriesLabel(explainer: string, metric: string, variantCount: number): string {
  return variantCount > 1 ? `${explainer} · ${metric}` : explainer;
}

/** Distinct values in first-seen order. */
export function distinct<T>(values: Iterable<T>): T[] {
  return [...new Set(values)];
}

/** A chart plugin without params. */
export function defineChart(chart: { id: string; version: string; rank: number; description: string; spec(tables: Tables): Spec | null }): ChartPlugin<Record<string, never>> {
  return {
    kind: 'chart',
    id: chart.id,
    version: chart.version,
    rank: chart.rank,
    description: chart.description,
    params: { type: 'object', additionalProperties: false, properties: {} },
    spec: (tables) => chart.spec(tables),
  };
}
