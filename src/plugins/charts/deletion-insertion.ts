/** Deletion and insertion curves (RISE): the predicted class's mean score against the share of pixels perturbed, per explainer and model. */
import { METRICS, defineChart, distinct, metricRows, num, order, seriesLabel, specHead } from './data.ts';

export const deletionInsertion = defineChart({
  id: 'deletion-insertion',
  version: '1',
  rank: 80,
  description: 'Deletion and insertion curves: mean score of the predicted class against the share of pixels removed (deletion, lower is better) or added (insertion, higher is better); AUC in the tooltip.',
  spec(tables) {
    const values: Record<string, string | number | null>[] = [];
    for (const metric of [METRICS.deletion, METRICS.insertion]) {
      const rows = metricRows(tables, metric.id);
      const variantCount = distinct(rows.map((r) => r.variant.label)).length;
      const auc = new Map(rows.filter((r) => r.measure === metric.auc).map((r) => [JSON.stringify([r.model, r.explainer, r.metric]), num(r.mean)]));
      for (const r of rows) {
        const step = metric.step.exec(String(r.measure));
        const mean = num(r.mean);
        if (!step || mean === null) continue;
        values.push({
          model: String(r.model),
          explainer: String(r.explainer),
          curve: variantCount > 1 ? r.variant.label : metric.id,
          series: seriesLabel(String(r.explainer), r.variant.label, 1),
          fraction: Number(step[1]),
          score: mean,
          auc: auc.get(JSON.stringify([r.model, r.explainer, r.metric])) ?? null,
        });
      }
    }
    if (values.length === 0) return null;
    const models = order(tables, 'architecture', values.map((v) => String(v.model)));
    const explainers = order(tables, 'explainer', values.map((v) => String(v.explainer)));
    return {
      ...specHead('Deletion and insertion curves', 'mean over images and folds of the predicted class’s score'),
      data: { values },
      facet: {
        row: { field: 'model', type: 'nominal', sort: models, title: null },
        column: { field: 'curve', type: 'nominal', sort: distinct(values.map((v) => String(v.curve))), title: null },
      },
      spec: {
        width: 220,
        height: 150,
        mark: { type: 'line', point: { size: 14 }, tooltip: true },
        encoding: {
          x: { field: 'fraction', type: 'quantitative', title: 'share of pixels perturbed', scale: { domain: [0, 1] } },
          y: { field: 'score', type: 'quantitative', title: 'score' },
          color: { field: 'explainer', type: 'nominal', sort: explainers, scale: { scheme: explainers.length > 10 ? 'category20' : 'tableau10' } },
          tooltip: [{ field: 'model' }, { field: 'explainer' }, { field: 'curve' }, { field: 'fraction' }, { field: 'score', format: '.3f' }, { field: 'auc', title: 'AUC', format: '.3f' }],
        },
      },
    };
  },
});
