/** Loss and accuracy per epoch, training and validation, per model and fold (the `training` table). */
import { defineChart, distinct, modelOf, num, order, specHead } from './data.ts';

const CURVES = [
  { column: 'trainLoss', quantity: 'loss', split: 'training' },
  { column: 'valLoss', quantity: 'loss', split: 'validation' },
  { column: 'trainAccuracy', quantity: 'accuracy', split: 'training' },
  { column: 'valAccuracy', quantity: 'accuracy', split: 'validation' },
];

export const trainingCurves = defineChart({
  id: 'training-curves',
  version: '1',
  rank: 60,
  description: 'Training curves: loss and accuracy per epoch on the training and validation images, per model and fold.',
  spec(tables) {
    const values = (tables.training ?? []).flatMap((row) =>
      CURVES.flatMap(({ column, quantity, split }) => {
        const value = num(row[column]);
        const epoch = num(row.epoch);
        return value === null || epoch === null ? [] : [{ model: modelOf(row), fold: String(row.fold), epoch, quantity, split, value }];
      }),
    );
    if (values.length === 0) return null;
    const models = order(tables, 'architecture', values.map((v) => v.model));
    return {
      ...specHead('Training curves', 'solid: training images, dashed: validation images; one colour per fold'),
      data: { values },
      facet: {
        row: { field: 'quantity', type: 'nominal', sort: ['loss', 'accuracy'], title: null },
        column: { field: 'model', type: 'nominal', sort: models, title: null },
      },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: 240,
        height: 150,
        mark: { type: 'line', point: { size: 16 }, tooltip: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
          y: { field: 'value', type: 'quantitative', title: null },
          color: { field: 'fold', type: 'nominal', sort: distinct(values.map((v) => v.fold)), title: 'fold' },
          strokeDash: { field: 'split', type: 'nominal', sort: ['training', 'validation'], title: 'images' },
          tooltip: [{ field: 'model' }, { field: 'fold' }, { field: 'epoch' }, { field: 'split' }, { field: 'quantity' }, { field: 'value', format: '.4f' }],
        },
      },
    };
  },
});
