/**
 * The built-in chart plugins on hand-made result tables: each finds its
 * metric by plugin id (whatever the manifest named it), returns null when
 * its data is absent, and gives a Vega-Lite spec that vega renders to an SVG
 * with marks and a PNG, without warnings.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import type { ChartPlugin, ResultRow } from '../src/core/plugins/types.ts';
import { renderChart } from '../src/core/report/render.ts';
import builtins from '../src/plugins/index.ts';
import { withoutSign } from '../src/plugins/charts/localisation-by-sign.ts';
import { levelOrder } from '../src/plugins/charts/iou-thresholds.ts';
import { metricRows } from '../src/plugins/charts/data.ts';

const charts = new Map((builtins.filter((p) => p.kind === 'chart') as ChartPlugin[]).map((c) => [c.id, c]));
const chart = (id: string) => {
  const plugin = charts.get(id);
  assert.ok(plugin, `chart ${id} is not registered`);
  return plugin;
};

const MODELS = ['small-cnn', 'resnet18'];
const EXPLAINERS = ['gradcam', 'saliency[sign=positive]', 'saliency[sign=negative]'];
const variant = (kind: string, label: string, id: string, params: Record<string, unknown> = {}): ResultRow => ({ kind, label, id, params: JSON.stringify(params) });

/** A sweep's tables: two models, three explainers, every metric the charts read (one renamed), training history, confusion counts. */
function tables(): Record<string, ResultRow[]> {
  const variants = [
    ...MODELS.map((m) => variant('architecture', m, m)),
    variant('explainer', 'gradcam', 'gradcam', { layer: 'auto' }),
    variant('explainer', 'saliency[sign=positive]', 'saliency', { sign: 'positive' }),
    variant('explainer', 'saliency[sign=negative]', 'saliency', { sign: 'negative' }),
    variant('metric', 'hr', 'hit-rate'),
    variant('metric', 'layer-coverage', 'layer-coverage'),
    variant('metric', 'iou', 'iou', { thresholds: [0.5, 0.9] }),
    variant('metric', 'confidence-change[perturbation=darken]', 'confidence-change', { perturbation: 'darken', cover: 'unimportant' }),
    variant('metric', 'confidence-change[perturbation=zero]', 'confidence-change', { perturbation: 'zero', cover: 'unimportant', thresholds: [0.5, 0.9] }),
    variant('metric', 'deletion', 'deletion', { steps: 2 }),
    variant('metric', 'insertion', 'insertion', { steps: 2 }),
    variant('metric', 'mass', 'mass'),
  ];
  const summary: ResultRow[] = [];
  let k = 0;
  const add = (metric: string, measure: string) => {
    for (const model of MODELS) for (const explainer of EXPLAINERS) summary.push({ model, explainer, metric, measure, mean: ((k++ * 37) % 100) / 100, sd: 0.05, folds: 3 });
  };
  for (const measure of ['graded', 'binary', 'peakPixels']) add('hr', measure);
  for (const measure of ['top', 'background', 'weighted']) add('layer-coverage', measure);
  for (const t of ['0.50', '0.90']) for (const region of ['255', '128', '64', '32', 'other']) add('iou', `iou@${t}:${region}`);
  for (const measure of ['before', 'after', 'change', 'drop', 'relativeDrop', 'increase']) add('confidence-change[perturbation=darken]', measure);
  for (const t of ['0.50', '0.90']) for (const measure of ['drop', 'increase']) add('confidence-change[perturbation=zero]', `${measure}@${t}`);
  for (const metric of ['deletion', 'insertion']) for (const measure of ['auc', 'score@0', 'score@0.5', 'score@1']) add(metric, measure);
  add('mass', 'firstHalf');
  const training = MODELS.flatMap((model) => [1, 2].flatMap((fold) => [1, 2, 3].map((epoch) => ({ model, fold, epoch, learningRate: 0.001, trainLoss: 1 / epoch, trainAccuracy: 0.5 + 0.1 * epoch, valLoss: 1.2 / epoch, valAccuracy: 0.4 + 0.1 * epoch, frozen: false, seconds: 1 }))));
  const classes = ['AD', 'CG', 'PS'];
  const confusion = MODELS.flatMap((model) => classes.flatMap((t) => classes.map((p) => ({ model, true: t, predicted: p, count: t === p ? 5 : 1 }))));
  return { variants, 'summary-over-folds': summary, training, 'confusion-total': confusion };
}

describe('chart plugins', () => {
  it('are registered in their default order', () => {
    assert.deepEqual(
      [...charts.values()].sort((a, b) => (a.rank ?? 100) - (b.rank ?? 100)).map((c) => c.id),
      ['localisation-by-method', 'localisation-by-sign', 'confidence', 'iou-thresholds', 'layer-coverage', 'training-curves', 'confusion-matrices', 'deletion-insertion'],
    );
  });

  it('return null when the tables hold nothing to draw', () => {
    const onlyOtherMetric: Record<string, ResultRow[]> = { variants: [variant('metric', 'mass', 'mass')], 'summary-over-folds': [{ model: 'm', explainer: 'e', metric: 'mass', measure: 'firstHalf', mean: 0.5, sd: null, folds: 1 }] };
    for (const plugin of charts.values()) {
      assert.equal(plugin.spec({}, {}), null, `${plugin.id} on no tables`);
      assert.equal(plugin.spec(onlyOtherMetric, {}), null, `${plugin.id} on another metric's rows`);
    }
  });

  for (const id of ['localisation-by-method', 'localisation-by-sign', 'confidence', 'iou-thresholds', 'layer-coverage', 'training-curves', 'confusion-matrices', 'deletion-insertion']) {
    it(`${id}: renders to an SVG with marks and a PNG, without warnings`, async () => {
      const spec = chart(id).spec(tables(), {});
      assert.ok(spec, `${id} found no data`);
      const rendered = await renderChart(spec);
      assert.deepEqual(rendered.warnings, []);
      assert.ok(/class="mark-[a-z]+ role-mark/.test(rendered.svg), 'no marks in the SVG');
      assert.ok((rendered.svg.match(/<path|<line|<text/g) ?? []).length > 10);
      const png = await sharp(rendered.png).metadata();
      assert.equal(png.format, 'png');
      assert.ok(png.width! > 100 && png.height! > 100);
    });
  }

  it('localisation-by-method: one bar per model × explainer × measure with mean ± sd, found under the manifest name `hr`', () => {
    const values = (chart('localisation-by-method').spec(tables(), {})!.data as { values: Record<string, unknown>[] }).values;
    assert.equal(values.length, MODELS.length * EXPLAINERS.length * 2);
    assert.deepEqual([...new Set(values.map((v) => v.measure))].sort(), ['binary', 'graded']);
    for (const v of values) assert.ok(Math.abs((v.hi as number) - (v.lo as number) - 0.1) < 1e-12);
  });

  it('localisation-by-sign: pairs the positive and negative variants of a method', () => {
    const values = (chart('localisation-by-sign').spec(tables(), {})!.data as { values: Record<string, unknown>[] }).values;
    assert.deepEqual([...new Set(values.map((v) => v.method))], ['saliency']);
    assert.deepEqual([...new Set(values.map((v) => v.sign))].sort(), ['negative', 'positive']);
    assert.equal(values.length, MODELS.length * 2 * 2);
    // Without sign variants there is nothing to split.
    const unsigned = tables();
    unsigned.variants = unsigned.variants.filter((v) => !String(v.label).startsWith('saliency'));
    assert.equal(chart('localisation-by-sign').spec(unsigned, {}), null);
  });

  it('withoutSign drops the sign from a variant label and keeps the other params', () => {
    assert.equal(withoutSign('saliency[sign=negative]'), 'saliency');
    assert.equal(withoutSign('integrated-gradients[sign=positive,steps=5]'), 'integrated-gradients[steps=5]');
    assert.equal(withoutSign('integrated-gradients[steps=5,sign=positive]'), 'integrated-gradients[steps=5]');
    assert.equal(withoutSign('gradcam'), 'gradcam');
  });

  it('confidence: one point per explainer for darken and one per threshold for zero, DiC from drop and IiC from increase', () => {
    const t = tables();
    const values = (chart('confidence').spec(t, {})!.data as { values: Record<string, unknown>[] }).values;
    const perModelExplainer = values.filter((v) => v.model === 'small-cnn' && v.explainer === 'gradcam');
    assert.deepEqual(perModelExplainer.map((v) => [v.perturbation, v.threshold]).sort(), [
      ['darken', null],
      ['zero', 0.5],
      ['zero', 0.9],
    ]);
    const darken = perModelExplainer.find((v) => v.perturbation === 'darken')!;
    const row = (measure: string) => t['summary-over-folds'].find((r) => r.model === 'small-cnn' && r.explainer === 'gradcam' && r.metric === 'confidence-change[perturbation=darken]' && r.measure === measure)!.mean;
    assert.equal(darken.dic, row('drop'));
    assert.equal(darken.iic, row('increase'));
  });

  it('iou-thresholds: thresholds and layer levels parsed from the column names, levels high to low', () => {
    const spec = chart('iou-thresholds').spec(tables(), {})!;
    const values = (spec.data as { values: Record<string, unknown>[] }).values;
    assert.deepEqual([...new Set(values.map((v) => v.threshold))], [0.5, 0.9]);
    assert.deepEqual((spec.facet as { column: { sort: string[] } }).column.sort, ['255', '128', '64', '32', 'other']);
    assert.deepEqual(levelOrder(['other', '32', '255', '128']), ['255', '128', '32', 'other']);
  });

  it('training-curves: loss and accuracy of training and validation per model, fold and epoch', () => {
    const values = (chart('training-curves').spec(tables(), {})!.data as { values: Record<string, unknown>[] }).values;
    assert.equal(values.length, MODELS.length * 2 * 3 * 4);
    assert.deepEqual(values.find((v) => v.model === 'resnet18' && v.fold === '2' && v.epoch === 2 && v.quantity === 'loss' && v.split === 'validation')!.value, 0.6);
  });

  it('confusion-matrices: the share of the true class beside each count', () => {
    const values = (chart('confusion-matrices').spec(tables(), {})!.data as { values: Record<string, unknown>[] }).values;
    assert.equal(values.length, MODELS.length * 9);
    assert.equal(values.find((v) => v.true === 'AD' && v.predicted === 'AD')!.share, 5 / 7);
  });

  it('metricRows matches a label equal to the id when the variants table is missing (older results)', () => {
    const rows = metricRows({ 'summary-over-folds': [{ model: 'm', explainer: 'e', metric: 'hit-rate', measure: 'graded', mean: 1, sd: null, folds: 1 }] }, 'hit-rate');
    assert.equal(rows.length, 1);
    assert.equal(rows[0].variant.id, 'hit-rate');
  });
});
