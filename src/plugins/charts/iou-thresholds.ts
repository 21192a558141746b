/** The study's masks against the layer map: IoU of the mask m ≥ t with each layer level, against the threshold t. */
import { METRICS, defineChart, distinct, metricRows, num, order, seriesLabel, specHead } from './data.ts';

/** Layer levels as the layer map ranks them: pixel values high to low, named regions (`other`) last. */
export function levelOrder(levels: string[]): string[] {
  const value = (level: string) => (/^\d+$/.test(level) ? Number(level) : -Infinity);
  return distinct(levels).sort((a, b) => value(b) - value(a) || a.localeCompare(b));
}

export const iouThresholds = defineChart({
  id: 'iou-thresholds',
  version: '1',
  rank: 40,
  description: 'IoU of the thresholded map (m ≥ t) with each layer-map level against the threshold t, per explainer and model; means over folds.',
  spec(tables) {
    const rows = metricRows(tables, METRICS.iou.id).flatMap((r) => {
      const column = METRICS.iou.column.exec(String(r.measure));
      const mean = num(r.mean);
      return column && mean !== null ? [{ r, threshold: Number(column[1]), level: column[2], mean }] : [];
    });
    if (rows.length === 0) return null;
    const variantCount = distinct(rows.map(({ r }) => r.variant.label)).length;
    const values = rows.map(({ r, threshold, level, mean }) => ({
      model: String(r.model),
      explainer: String(r.explainer),
      series: seriesLabel(String(r.explainer), r.variant.label, variantCount),
      threshold,
      level,
      mean,
      sd: num(r.sd),
    }));
    const models = order(tables, 'architecture', values.map((v) => v.model));
    const explainers = order(tables, 'explainer', values.map((v) => v.explainer));
    const series = distinct(explainers.flatMap((e) => values.filter((v) => v.explainer === e).map((v) => v.series)));
    return {
      ...specHead('IoU of the map mask with each layer level', 'mask m ≥ t; columns: layer-map level (pixel value); means over folds'),
      data: { values },
      facet: {
        row: { field: 'model', type: 'nominal', sort: models, title: null },
        column: { field: 'level', type: 'nominal', sort: levelOrder(values.map((v) => v.level)), title: 'layer level' },
      },
      spec: {
        width: 170,
        height: 130,
        mark: { type: 'line', point: true, tooltip: true },
        encoding: {
          x: { field: 'threshold', type: 'quantitative', title: 'threshold t', scale: { zero: false } },
          y: { field: 'mean', type: 'quantitative', title: 'IoU' },
          color: { field: 'series', type: 'nominal', sort: series, title: 'explainer', scale: { scheme: series.length > 10 ? 'category20' : 'tableau10' } },
          tooltip: [{ field: 'model' }, { field: 'series', title: 'explainer' }, { field: 'level' }, { field: 'threshold' }, { field: 'mean', title: 'IoU', format: '.3f' }, { field: 'sd', format: '.3f' }],
        },
      },
    };
  },
});
