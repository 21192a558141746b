/** Where the map's value lies: mean map over the top (diagnostic) layer against the mean over the background, per explainer and model. */
import { METRICS, defineChart, metricRows, num, order, seriesLabel, specHead, distinct } from './data.ts';

export const layerCoverage = defineChart({
  id: 'layer-coverage',
  version: '1',
  rank: 50,
  description: 'Coverage of the top layer against the background (mean normalised map over each), per explainer and model; above the diagonal the map favours the diagnostic layer.',
  spec(tables) {
    const rows = metricRows(tables, METRICS.coverage.id);
    const variantCount = distinct(rows.map((r) => r.variant.label)).length;
    const points = new Map<string, Record<string, string | number | null>>();
    for (const r of rows) {
      const measure = String(r.measure);
      if (![METRICS.coverage.top, METRICS.coverage.background, METRICS.coverage.weighted].includes(measure as never)) continue;
      const key = JSON.stringify([r.model, r.explainer, r.variant.label]);
      const point = points.get(key) ?? { model: String(r.model), explainer: String(r.explainer), series: seriesLabel(String(r.explainer), r.variant.label, variantCount) };
      point[measure] = num(r.mean);
      points.set(key, point);
    }
    const { top, background, weighted } = METRICS.coverage;
    const values = [...points.values()].filter((p) => p[top] != null && p[background] != null);
    if (values.length === 0) return null;
    const models = order(tables, 'architecture', values.map((v) => String(v.model)));
    const explainers = order(tables, 'explainer', values.map((v) => String(v.explainer)));
    const series = distinct(explainers.flatMap((e) => values.filter((v) => v.explainer === e).map((v) => String(v.series))));
    const axis = (field: string, title: string) => ({ field, type: 'quantitative', title, scale: { domain: [0, 1] } });
    return {
      ...specHead('Coverage of the top layer against the background', 'mean of the normalised map over each region, means over folds'),
      width: 320,
      height: 320,
      layer: [
        {
          data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
          mark: { type: 'line', color: '#aaa', strokeDash: [4, 4] },
          encoding: { x: { field: 'x', type: 'quantitative', scale: { domain: [0, 1] } }, y: { field: 'y', type: 'quantitative', scale: { domain: [0, 1] } } },
        },
        {
          data: { values },
          mark: { type: 'point', filled: true, size: 80, opacity: 0.85, tooltip: true },
          encoding: {
            x: axis(background, 'background (outside the layers)'),
            y: axis(top, 'top layer'),
            color: { field: 'series', type: 'nominal', sort: series, title: 'explainer', scale: { scheme: series.length > 10 ? 'category20' : 'tableau10' } },
            shape: { field: 'model', type: 'nominal', sort: models },
            tooltip: [{ field: 'model' }, { field: 'series', title: 'explainer' }, { field: top, format: '.3f' }, { field: background, format: '.3f' }, { field: weighted, format: '.3f' }],
          },
        },
      ],
    };
  },
});
