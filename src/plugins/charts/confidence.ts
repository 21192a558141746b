/**
 * The reliability of the maps: Drop in Confidence (DiC) against Increase in
 * Confidence (IiC) per explainer and perturbation (darken; zero at each
 * threshold), one panel per model.
 */
import { METRICS, defineChart, distinct, metricRows, num, order, specHead, type VariantInfo } from './data.ts';

/** How a confidence-change variant perturbs: `darken`, `zero`, with `, important covered` when it covers what the map deems important. */
function perturbationOf(variant: VariantInfo): string {
  const perturbation = String(variant.params.perturbation ?? 'darken');
  return variant.params.cover === 'important' ? `${perturbation}, important covered` : perturbation;
}

export const confidence = defineChart({
  id: 'confidence',
  version: '1',
  rank: 30,
  description: 'Drop in Confidence (DiC) against Increase in Confidence (IiC) per explainer and perturbation, means over folds; zero perturbation gives one point per threshold.',
  spec(tables) {
    const rows = metricRows(tables, METRICS.confidence.id);
    const points = new Map<string, { model: string; explainer: string; perturbation: string; metric: string; threshold: number | null; dic: number | null; iic: number | null }>();
    const labels = new Map<string, string>();
    for (const r of rows) {
      const measure = String(r.measure);
      const perThreshold = METRICS.confidence.perThreshold.exec(measure);
      const kind = perThreshold ? perThreshold[1] : measure === METRICS.confidence.drop ? 'drop' : measure === METRICS.confidence.increase ? 'increase' : null;
      if (!kind) continue;
      const threshold = perThreshold ? Number(perThreshold[2]) : null;
      labels.set(r.variant.label, perturbationOf(r.variant));
      const key = JSON.stringify([r.model, r.explainer, r.variant.label, threshold]);
      const point = points.get(key) ?? { model: String(r.model), explainer: String(r.explainer), perturbation: '', metric: r.variant.label, threshold, dic: null, iic: null };
      if (kind === 'drop') point.dic = num(r.mean);
      else point.iic = num(r.mean);
      points.set(key, point);
    }
    // Two variants that perturb the same way (other score, other thresholds) keep their metric labels apart.
    const counts = new Map<string, number>();
    for (const label of labels.values()) counts.set(label, (counts.get(label) ?? 0) + 1);
    const values = [...points.values()]
      .filter((p) => p.dic !== null && p.iic !== null)
      .map((p) => {
        const perturbation = labels.get(p.metric)!;
        return { ...p, perturbation: counts.get(perturbation)! > 1 ? `${perturbation} (${p.metric})` : perturbation };
      });
    if (values.length === 0) return null;
    const models = order(tables, 'architecture', values.map((v) => v.model));
    const explainers = order(tables, 'explainer', values.map((v) => v.explainer));
    return {
      ...specHead('Reliability of the maps: DiC against IiC', 'means over folds; low DiC and high IiC: the map keeps what the model needs'),
      data: { values },
      facet: { field: 'model', type: 'nominal', sort: models, title: null },
      columns: 2,
      spec: {
        width: 260,
        height: 220,
        mark: { type: 'point', filled: true, size: 70, opacity: 0.85, tooltip: true },
        encoding: {
          x: { field: 'dic', type: 'quantitative', title: 'DiC (mean drop)', scale: { zero: true, nice: true } },
          y: { field: 'iic', type: 'quantitative', title: 'IiC (share of images whose confidence rose)', scale: { domain: [0, 1] } },
          color: { field: 'explainer', type: 'nominal', sort: explainers, scale: { scheme: explainers.length > 10 ? 'category20' : 'tableau10' } },
          shape: { field: 'perturbation', type: 'nominal', sort: distinct(values.map((v) => v.perturbation)) },
          tooltip: [{ field: 'model' }, { field: 'explainer' }, { field: 'perturbation' }, { field: 'threshold' }, { field: 'dic', title: 'DiC', format: '.3f' }, { field: 'iic', title: 'IiC', format: '.3f' }],
        },
      },
    };
  },
});
