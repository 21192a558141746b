/** The study's "localisation results for selected methods": Hit Rate (graded and binary) by explainer × model, mean ± sd over folds. */
import { METRICS, defineChart, distinct, errorBar, metricRows, num, order, specHead } from './data.ts';

/** Graded before binary, as the metric lists them; variants of the same measure together. */
export function measureOrder(measures: string[]): string[] {
  const rank = (m: string) => METRICS.hitRate.measures.findIndex((name) => m === name || m.startsWith(`${name} (`));
  return distinct(measures).sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

export const localisationByMethod = defineChart({
  id: 'localisation-by-method',
  version: '1',
  rank: 10,
  description: 'Hit Rate (graded and binary) by explainer and model: mean over folds, error bars ± sd over folds.',
  spec(tables) {
    const rows = metricRows(tables, METRICS.hitRate.id).filter((r) => (METRICS.hitRate.measures as readonly string[]).includes(String(r.measure)) && num(r.mean) !== null);
    if (rows.length === 0) return null;
    const variantCount = distinct(rows.map((r) => r.variant.label)).length;
    const values = rows.map((r) => ({
      model: String(r.model),
      explainer: String(r.explainer),
      measure: variantCount > 1 ? `${r.measure} (${r.metric})` : String(r.measure),
      mean: num(r.mean),
      sd: num(r.sd),
      folds: r.count,
      ...errorBar(num(r.mean)!, num(r.sd)),
    }));
    const models = order(tables, 'architecture', values.map((v) => v.model));
    const explainers = order(tables, 'explainer', values.map((v) => v.explainer));
    const x = { field: 'explainer', type: 'nominal', sort: explainers, title: null, axis: { labelAngle: -40 } };
    const xOffset = { field: 'model', type: 'nominal', sort: models };
    return {
      ...specHead('Hit Rate by explainer and model', 'mean over folds; error bars ± sd over folds'),
      data: { values },
      facet: { row: { field: 'measure', type: 'nominal', title: 'Hit Rate', sort: measureOrder(values.map((v) => v.measure)) } },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: { step: Math.max(24, 14 * models.length) },
        height: 180,
        layer: [
          {
            mark: { type: 'bar', tooltip: true },
            encoding: {
              x,
              xOffset,
              y: { field: 'mean', type: 'quantitative', title: 'mean' },
              color: { field: 'model', type: 'nominal', sort: models, title: 'model' },
              tooltip: [
                { field: 'model' },
                { field: 'explainer' },
                { field: 'measure' },
                { field: 'mean', format: '.3f' },
                { field: 'sd', format: '.3f' },
                { field: 'folds' },
              ],
            },
          },
          { mark: { type: 'rule', color: '#333' }, encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ],
      },
    };
  },
});
