/** Confusion matrices summed over folds, one per model; cells shaded by the share of their true class. */
import { defineChart, distinct, modelOf, num, order, specHead } from './data.ts';

export const confusionMatrices = defineChart({
  id: 'confusion-matrices',
  version: '1',
  rank: 70,
  description: 'Confusion matrix of each model, test images of every fold together: rows true class, columns predicted class, shade the share of the true class.',
  spec(tables) {
    const rows = (tables['confusion-total'] ?? []).filter((r) => num(r.count) !== null);
    if (rows.length === 0) return null;
    const totals = new Map<string, number>();
    for (const r of rows) totals.set(JSON.stringify([modelOf(r), r.true]), (totals.get(JSON.stringify([modelOf(r), r.true])) ?? 0) + Number(r.count));
    const values = rows.map((r) => {
      const total = totals.get(JSON.stringify([modelOf(r), r.true]))!;
      return { model: modelOf(r), true: String(r.true), predicted: String(r.predicted), count: Number(r.count), share: total > 0 ? Number(r.count) / total : 0 };
    });
    const classes = distinct(values.map((v) => v.true));
    const models = order(tables, 'architecture', values.map((v) => v.model));
    const side = Math.max(120, 34 * classes.length);
    return {
      ...specHead('Confusion matrices', 'test images of all folds; shade: share of the true class'),
      data: { values },
      facet: { field: 'model', type: 'nominal', sort: models, title: null },
      columns: 4,
      spec: {
        width: side,
        height: side,
        encoding: {
          x: { field: 'predicted', type: 'nominal', sort: classes, title: 'predicted', axis: { labelAngle: 0 } },
          y: { field: 'true', type: 'nominal', sort: classes, title: 'true' },
        },
        layer: [
          {
            mark: { type: 'rect', tooltip: true },
            encoding: {
              color: { field: 'share', type: 'quantitative', scale: { domain: [0, 1], scheme: 'blues' }, title: 'share of true class', legend: { format: '.0%' } },
              tooltip: [{ field: 'model' }, { field: 'true' }, { field: 'predicted' }, { field: 'count' }, { field: 'share', format: '.1%' }],
            },
          },
          {
            mark: { type: 'text', fontSize: 11 },
            encoding: {
              text: { field: 'count', type: 'quantitative' },
              color: { condition: { test: 'datum.share > 0.5', value: 'white' }, value: '#222' },
            },
          },
        ],
      },
    };
  },
});
