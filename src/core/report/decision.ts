/**
 * The study's decision scheme (seed figures decision-scheme.png and
 * heatmap-reliability-scheme.png) over a sweep's result tables: per model,
 * accuracy high or low × attention on the diagnostic layers or elsewhere
 * gives one of four verdicts; the reliability of the maps (Drop and Increase
 * in Confidence) qualifies the attention finding. Which metric and column
 * stand for Hit Rate, coverage, DiC and IiC, and every threshold, come from
 * the manifest's `report.decision`; nothing here knows a metric plugin.
 */
import type { ResultRow } from '../plugins/types.ts';

export interface DecisionConfig {
  /** High accuracy: mean test accuracy over folds ≥ this. */
  accuracy: number;
  hitRate: { metric: string; measure: string; min: number };
  coverage: { metric: string; top: string; background: string; minRatio: number };
  reliability: { metric: string; params: Record<string, unknown>; drop: string; maxDrop: number; increase: string; minIncrease: number };
}

/** The schema's defaults (manifest/schema.ts), for callers without a resolved manifest. */
export const DEFAULT_DECISION: DecisionConfig = {
  accuracy: 0.9,
  hitRate: { metric: 'hit-rate', measure: 'graded', min: 2 },
  coverage: { metric: 'layer-coverage', top: 'top', background: 'background', minRatio: 1.5 },
  reliability: { metric: 'confidence-change', params: { perturbation: 'darken', cover: 'unimportant' }, drop: 'drop', maxDrop: 0.5, increase: 'increase', minIncrease: 0.1 },
};

export type Focus = 'correct' | 'elsewhere' | 'unknown';
export type Reliability = 'high' | 'low' | 'unknown';
export type VerdictKind = 'trusted' | 'over-learned' | 'find-errors' | 'under-trained' | 'undecided';

/** What one explainer's maps say about one model. */
export interface ExplainerFinding {
  /** The dataset variant, when the sweep has several. */
  dataset?: string;
  model: string;
  explainer: string;
  hitRate: number | null;
  coverageTop: number | null;
  coverageBackground: number | null;
  /** top / background; null when either is missing or the background is 0. */
  coverageRatio: number | null;
  focus: Focus;
  /** DiC and IiC of the reliability metric's variant. */
  drop: number | null;
  increase: number | null;
  reliability: Reliability;
}

export interface ModelVerdict {
  /** The dataset variant the model was trained and judged on, when the sweep has several. */
  dataset?: string;
  model: string;
  accuracy: number;
  accuracySd: number | null;
  folds: number;
  accuracyHigh: boolean;
  /** The explainers whose measures decide the focus: those with reliable maps, else all that gave a value. */
  basis: string[];
  /** Explainers with at least one value. */
  explainers: number;
  reliableExplainers: number;
  /** Means over the basis explainers. */
  hitRate: number | null;
  coverageTop: number | null;
  coverageBackground: number | null;
  coverageRatio: number | null;
  focus: Focus;
  reliability: Reliability;
  verdict: VerdictKind;
  /** Class with the lowest mean recall over folds, for the low-accuracy verdicts. */
  weakestClass: { class: string; recall: number } | null;
}

export interface Decisions {
  config: DecisionConfig;
  /** Metric labels the numbers came from (null: the metric is not in the sweep). */
  sources: { hitRate: string | null; coverage: string | null; reliability: string | null };
  /** One verdict per model, or per dataset variant × model when the sweep has several dataset variants. */
  models: ModelVerdict[];
  explainers: ExplainerFinding[];
}

/** How a verdict names what it judges: the model, with its dataset variant when there are several (`small-cnn · shortcut`). */
export function modelOnDataset(subject: { model: string; dataset?: string }): string {
  return subject.dataset === undefined ? subject.model : `${subject.model} · ${subject.dataset}`;
}

export const VERDICTS: Record<VerdictKind, { title: string; finding: string; conclusion: string }> = {
  trusted: {
    title: 'High accuracy, attention on the diagnostic layers',
    finding: 'The model identifies the classes correctly and decides from relevant image features.',
    conclusion: 'Its decisions can be trusted.',
  },
  'over-learned': {
    title: 'High accuracy, attention elsewhere',
    finding: 'The model tells the classes apart, but looks at undesirable areas: its decisions rest on wrong information, interference or noise.',
    conclusion: 'Most likely over-learned: it recognises the classes from interference.',
  },
  'find-errors': {
    title: 'Low accuracy, attention on the diagnostic layers',
    finding: 'The model classifies wrongly although it decides from areas with useful information.',
    conclusion: 'Find the source of the errors: insufficient learning of a class, or the nature of the classified samples.',
  },
  'under-trained': {
    title: 'Low accuracy, attention elsewhere',
    finding: 'The model cannot identify the classes, and decides from areas where the right information is not.',
    conclusion: 'Likely insufficiently trained to recognise the data.',
  },
  undecided: {
    title: 'Attention not measured',
    finding: 'The sweep has neither the Hit Rate nor the layer-coverage metric named in report.decision, so where the model looks is unknown.',
    conclusion: 'Add those metrics (and explainers) to the manifest to place the model in the scheme.',
  },
};

/** The reliability scheme's four cells, and what is said when reliability was not measured. */
export function qualifier(reliability: Reliability, focus: Focus): string {
  if (focus === 'unknown') return '';
  if (reliability === 'unknown') return 'The reliability of the maps was not measured (no matching confidence-change variant), so the attention finding is unqualified.';
  const text: Record<'high' | 'low', Record<'correct' | 'elsewhere', string>> = {
    high: {
      correct: 'The maps are reliable: the model focuses on the desired regions, the values can be trusted, and the maps accurately highlight the areas relevant to the classification.',
      elsewhere: 'The maps are reliable: attention lies on an undesirable area, and given the high certainty of the method the model relied on incorrect information in making its decisions.',
    },
    low: {
      correct: 'The maps are not reliable: despite values suggesting correct focus, their low confidence does not allow trusting this result; the actual focus of the model may be different.',
      elsewhere: 'The maps are not reliable: they suggest improper focus, but their low confidence requires comparing the results with those of other methods.',
    },
  };
  return text[reliability][focus];
}

type Params = Record<string, unknown>;

/** Metric labels of a plugin id, in manifest order, with their params (from the `variants` table; without it, a label equal to the id). */
function metricVariants(tables: Record<string, ResultRow[]>, id: string): { label: string; params: Params }[] {
  const variants = (tables.variants ?? []).filter((v) => v.kind === 'metric');
  if (variants.length === 0) {
    const labels = new Set((tables['summary-over-folds'] ?? []).map((r) => String(r.metric)));
    return labels.has(id) ? [{ label: id, params: {} }] : [];
  }
  return variants.filter((v) => v.id === id).map((v) => ({ label: String(v.label), params: JSON.parse(String(v.params ?? '{}')) as Params }));
}

const sameValue = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

function mean(values: (number | null)[]): number | null {
  const valid = values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  return valid.length > 0 ? valid.reduce((a, b) => a + b, 0) / valid.length : null;
}

function ratio(top: number | null, background: number | null): number | null {
  if (top === null || background === null || background <= 0) return null;
  return top / background;
}

/** Whether the coverage criterion holds: a ratio ≥ minRatio, or attention on the top layer and none at all on the background. */
export function coveragePasses(top: number | null, background: number | null, minRatio: number): boolean | null {
  if (top === null || background === null) return null;
  if (background <= 0) return top > 0;
  return top / background >= minRatio;
}

function focusOf(hitRate: number | null, top: number | null, background: number | null, config: DecisionConfig): Focus {
  const checks = [hitRate === null ? null : hitRate >= config.hitRate.min, coveragePasses(top, background, config.coverage.minRatio)].filter((c): c is boolean => c !== null);
  if (checks.length === 0) return 'unknown';
  return checks.every(Boolean) ? 'correct' : 'elsewhere';
}

/**
 * The verdicts of every model with a classification summary, or null when
 * the sweep trained no model. Numbers are means over folds
 * (`summary-over-folds`); a model's focus comes from the means over the
 * explainers with reliable maps, or over all explainers when none is.
 */
export function decide(tables: Record<string, ResultRow[]>, config: DecisionConfig = DEFAULT_DECISION): Decisions | null {
  const classification = tables['classification-summary'] ?? [];
  if (classification.length === 0) return null;
  const summary = tables['summary-over-folds'] ?? [];
  const hitLabel = metricVariants(tables, config.hitRate.metric)[0]?.label ?? null;
  const coverageLabel = metricVariants(tables, config.coverage.metric)[0]?.label ?? null;
  const reliabilityLabel =
    metricVariants(tables, config.reliability.metric).find((v) => Object.entries(config.reliability.params).every(([key, value]) => sameValue(v.params[key], value)))?.label ?? null;
  // Rows of one dataset variant (every row where the tables have no dataset column).
  const onDataset = (row: ResultRow, dataset: string | undefined) => dataset === undefined || row.dataset === dataset;
  const value = (dataset: string | undefined, model: string, explainer: string, metric: string | null, measure: string): number | null => {
    if (metric === null) return null;
    const row = summary.find((r) => onDataset(r, dataset) && r.model === model && r.explainer === explainer && r.metric === metric && r.measure === measure);
    return typeof row?.mean === 'number' ? row.mean : null;
  };
  const explainerOrder = (tables.variants ?? []).filter((v) => v.kind === 'explainer').map((v) => String(v.label));
  const explainersOf = (dataset: string | undefined, model: string) => {
    const seen = [...new Set(summary.filter((r) => onDataset(r, dataset) && r.model === model).map((r) => String(r.explainer)))];
    return seen.sort((a, b) => rank(explainerOrder, a) - rank(explainerOrder, b) || a.localeCompare(b));
  };

  const findings: ExplainerFinding[] = [];
  const models: ModelVerdict[] = [];
  for (const row of classification) {
    const model = String(row.model);
    const dataset = row.dataset === undefined || row.dataset === null ? undefined : String(row.dataset);
    const on = dataset === undefined ? {} : { dataset };
    const own: ExplainerFinding[] = explainersOf(dataset, model).map((explainer) => {
      const hitRate = value(dataset, model, explainer, hitLabel, config.hitRate.measure);
      const coverageTop = value(dataset, model, explainer, coverageLabel, config.coverage.top);
      const coverageBackground = value(dataset, model, explainer, coverageLabel, config.coverage.background);
      const drop = value(dataset, model, explainer, reliabilityLabel, config.reliability.drop);
      const increase = value(dataset, model, explainer, reliabilityLabel, config.reliability.increase);
      const reliability: Reliability = drop === null || increase === null ? 'unknown' : drop <= config.reliability.maxDrop && increase >= config.reliability.minIncrease ? 'high' : 'low';
      return {
        ...on,
        model,
        explainer,
        hitRate,
        coverageTop,
        coverageBackground,
        coverageRatio: ratio(coverageTop, coverageBackground),
        focus: focusOf(hitRate, coverageTop, coverageBackground, config),
        drop,
        increase,
        reliability,
      };
    });
    findings.push(...own);
    // An explainer none of whose maps gave a value (all empty, say) says nothing either way.
    const informative = own.filter((f) => [f.hitRate, f.coverageTop, f.coverageBackground, f.drop, f.increase].some((v) => v !== null));
    const measured = informative.filter((f) => f.reliability !== 'unknown');
    const reliable = informative.filter((f) => f.reliability === 'high');
    const basis = reliable.length > 0 ? reliable : informative;
    const hitRate = mean(basis.map((f) => f.hitRate));
    const coverageTop = mean(basis.map((f) => f.coverageTop));
    const coverageBackground = mean(basis.map((f) => f.coverageBackground));
    const focus = focusOf(hitRate, coverageTop, coverageBackground, config);
    const reliability: Reliability = measured.length === 0 ? 'unknown' : reliable.length > 0 ? 'high' : 'low';
    const accuracy = Number(row.accuracy);
    const accuracyHigh = accuracy >= config.accuracy;
    const verdict: VerdictKind = focus === 'unknown' ? 'undecided' : accuracyHigh ? (focus === 'correct' ? 'trusted' : 'over-learned') : focus === 'correct' ? 'find-errors' : 'under-trained';
    models.push({
      ...on,
      model,
      accuracy,
      accuracySd: typeof row.accuracySd === 'number' ? row.accuracySd : null,
      folds: Number(row.folds ?? 0),
      accuracyHigh,
      basis: basis.map((f) => f.explainer),
      explainers: informative.length,
      reliableExplainers: reliable.length,
      hitRate,
      coverageTop,
      coverageBackground,
      coverageRatio: ratio(coverageTop, coverageBackground),
      focus,
      reliability,
      verdict,
      weakestClass: accuracyHigh ? null : weakestClass((tables['classification-by-class'] ?? []).filter((r) => onDataset(r, dataset)), model),
    });
  }
  return { config, sources: { hitRate: hitLabel, coverage: coverageLabel, reliability: reliabilityLabel }, models, explainers: findings };
}

function rank(order: string[], name: string): number {
  const i = order.indexOf(name);
  return i < 0 ? order.length : i;
}

function weakestClass(byClass: ResultRow[], model: string): { class: string; recall: number } | null {
  const recalls = new Map<string, number[]>();
  for (const row of byClass) {
    if (row.model !== model || typeof row.recall !== 'number') continue;
    const name = String(row.class);
    recalls.set(name, [...(recalls.get(name) ?? []), row.recall]);
  }
  let weakest: { class: string; recall: number } | null = null;
  for (const [name, values] of recalls) {
    const recall = mean(values)!;
    if (!weakest || recall < weakest.recall) weakest = { class: name, recall };
  }
  return weakest;
}

/** The verdicts as flat rows (`decision` table), one per model (per dataset variant × model, with a leading dataset column, when there are several). */
export function decisionRows(decisions: Decisions): ResultRow[] {
  return decisions.models.map((m) => ({
    ...(m.dataset === undefined ? {} : { dataset: m.dataset }),
    model: m.model,
    verdict: m.verdict,
    accuracy: m.accuracy,
    accuracySd: m.accuracySd,
    accuracyHigh: m.accuracyHigh,
    hitRate: m.hitRate,
    coverageTop: m.coverageTop,
    coverageBackground: m.coverageBackground,
    coverageRatio: m.coverageRatio,
    focus: m.focus,
    reliability: m.reliability,
    reliableExplainers: m.reliableExplainers,
    explainers: m.explainers,
    basis: m.basis.join(' '),
  }));
}

/** The per-explainer findings as flat rows (`decision-by-explainer` table). */
export function findingRows(decisions: Decisions): ResultRow[] {
  return decisions.explainers.map((f) => ({ ...f }));
}
