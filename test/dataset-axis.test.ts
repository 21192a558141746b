/**
 * The dataset as a grid axis: grid axes in dataset.params make dataset
 * variants, labelled by dataset.names or by the params that tell them apart,
 * and the planner runs every stage per variant; one variant plans exactly as
 * a dataset without axes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { distinguishingParts, formatValue, labelVariants } from '../src/core/manifest/grid.ts';
import { expandTasks, type Task } from '../src/core/plan/planner.ts';
import { Registry } from '../src/core/plugins/registry.ts';
import type { FileRecord } from '../src/core/plugins/types.ts';
import { syntheticHfus } from '../src/plugins/datasets/synthetic-hfus.ts';
import fixtures from './fixtures/plugins/points.ts';
import { manifestProblems, resolveText } from './helpers.ts';

const registry = new Registry();
for (const plugin of fixtures) registry.register(plugin, 'fixture');
registry.register(syntheticHfus, 'builtin');

const resolve = (text: string) => resolveText(registry, text);

const problems = (text: string): string[] => manifestProblems(registry, text);

const manifest = (dataset: string, extra = '') => `name: demo
dataset:
${dataset}
folds: { k: 2 }
models: [centroid]
explainers: [difference, { id: difference, params: { power: 2 } }]
metrics: [mass]
${extra}`;

const points = (params: string, names = '') => manifest(`  source: points\n  params: ${params}\n${names}`);

/** Fixed data-file hashes per folder, so index keys are real keys. */
const filesOf = (dir: string): FileRecord[] => [{ path: `/project/${dir}/class0/a.json`, sha256: dir.padEnd(64, '0'), size: 1 }];

function plan(text: string): Task[] {
  const resolved = resolve(text);
  return expandTasks(resolved, registry, (variant) => filesOf(String(variant.params.dir)));
}

describe('variant labels', () => {
  it('renders objects as {key:value,…} in written order, and an empty list as []', () => {
    assert.equal(formatValue({ probability: 1, classes: ['CG', 'PS'] }), '{probability:1,classes:CG+PS}');
    assert.equal(formatValue([]), '[]');
    assert.equal(formatValue([16, 16]), '16+16');
  });

  it('names an object param by the fields that differ: one by its path, several inside braces', () => {
    const order = ['perClass', 'shortcut'];
    const parts = distinguishingParts([
      { params: { perClass: 10, shortcut: { probability: 0, classes: [] } }, propertyOrder: order },
      { params: { perClass: 10, shortcut: { probability: 1, classes: ['CG'] } }, propertyOrder: order },
    ]);
    assert.deepEqual(parts, [['shortcut={probability:0,classes:[]}'], ['shortcut={probability:1,classes:CG}']]);
    const oneField = distinguishingParts([
      { params: { shortcut: { probability: 1, classes: ['CG'] } }, propertyOrder: order },
      { params: { shortcut: { probability: 1, classes: ['CG', 'PS'] } }, propertyOrder: order },
    ]);
    assert.deepEqual(oneField, [['shortcut.classes=CG'], ['shortcut.classes=CG+PS']]);
  });

  it('labels plugin variants as before: id[param=value], a lone variant by its id', () => {
    const variant = (power: number) => ({ id: 'difference', params: { power }, propertyOrder: ['power'] });
    assert.deepEqual(labelVariants([variant(1), variant(2), { id: 'other', params: {}, propertyOrder: [] }]), ['difference[power=1]', 'difference[power=2]', 'other']);
  });
});

describe('dataset variants in the manifest', () => {
  it('makes a variant per value of a dataset grid axis, labelled by what tells them apart', () => {
    const resolved = resolve(manifest('  source: synthetic-hfus\n  params: { perClass: 4, size: 16, shortcut: { grid: [{ probability: 0 }, { probability: 1, classes: [CG] }] } }'));
    assert.deepEqual(
      resolved.dataset.variants.map((v) => v.label),
      ['shortcut={probability:0,classes:[]}', 'shortcut={probability:1,classes:CG}'],
    );
    const marked = resolved.dataset.variants[1].params as { perClass: number; seed: number; shortcut: { probability: number; classes: string[] } };
    assert.deepEqual([marked.perClass, marked.seed, marked.shortcut.probability, marked.shortcut.classes], [4, 1, 1, ['CG']], 'the fixed params and defaults in every variant');
  });

  it('takes the labels from dataset.names, in grid order', () => {
    const resolved = resolve(points('{ dir: [clean, marked] }', '  names: [clean-data, marked-data]'));
    assert.deepEqual(
      resolved.dataset.variants.map((v) => [v.label, v.params.dir]),
      [
        ['clean-data', 'clean'],
        ['marked-data', 'marked'],
      ],
    );
  });

  it('keeps one dataset without axes as it was: one variant, params with defaults in the resolved manifest', () => {
    const resolved = resolve(manifest('  source: synthetic-hfus\n  params: { perClass: 4 }'));
    assert.equal(resolved.dataset.variants.length, 1);
    assert.equal(resolved.dataset.variants[0].label, 'synthetic-hfus');
    assert.deepEqual((resolved.data.dataset as { params: object }).params, resolved.dataset.variants[0].params);
    assert.equal((resolved.data.dataset as { variants?: unknown }).variants, undefined);
  });

  it('rejects as many names as variants only, pointing at dataset.names', () => {
    const [problem] = problems(points('{ dir: [a, b] }', '  names: [one, two, three]'));
    assert.match(problem, /^m\.yaml:5:10: \/dataset\/names: 3 names for 2 dataset variants .*; give one name per variant, in grid order$/);
    const [single] = problems(points('{ dir: a }', '  names: [one, two]'));
    assert.match(single, /\/dataset\/names: 2 names for 1 dataset variant \(dataset.params has no grid axis\); give one name per variant/);
  });

  it('points a bad value of a dataset axis at its element', () => {
    const [problem] = problems(manifest('  source: synthetic-hfus\n  params: { perClass: [4, many] }'));
    assert.match(problem, /^m\.yaml:4:27: \/dataset\/params\/perClass\/1: must be an integer, got "many"/);
  });

  it('rejects a repeated dataset variant', () => {
    const [problem] = problems(points('{ dir: [a, a] }'));
    assert.match(problem, /\/dataset\/params: dataset variants 1 and 2 have the same params; remove the repeated grid value/);
  });

  it('checks exclude rules that name a dataset variant', () => {
    const [unknown] = problems(points('{ dir: [a, b] }', '  names: [clean, marked]\n') + 'exclude:\n  - { dataset: marekd }\n');
    assert.match(unknown, /\/exclude\/0\/dataset: no dataset "marekd" in this grid; did you mean "marked"\?/);
    const [all] = problems(points('{ dir: [a, b] }', '  names: [clean, marked]\n') + 'exclude:\n  - { dataset: clean }\n  - { dataset: marked }\n');
    assert.match(all, /\/exclude\/1: these exclude rules leave out every dataset variant; keep at least one/);
  });
});

describe('planner: dataset variants', () => {
  const two = points('{ dir: [data, noisy] }', '  names: [clean, noisy]');

  it('runs every stage per dataset variant; cells and labels carry the variant', () => {
    const tasks = plan(two);
    const count = (stage: string, dataset?: string) => tasks.filter((t) => t.stage === stage && (dataset === undefined || t.cell.dataset === dataset)).length;
    for (const dataset of ['clean', 'noisy']) {
      assert.deepEqual(
        ['index', 'split', 'train', 'predict', 'explain', 'score'].map((stage) => count(stage, dataset)),
        [1, 1, 2, 2, 4, 4],
        dataset,
      );
    }
    assert.deepEqual([count('aggregate'), count('report')], [1, 1]);
    const train = tasks.find((t) => t.stage === 'train' && t.cell.dataset === 'noisy' && t.cell.fold === 2)!;
    assert.equal(train.label, 'train centroid · noisy fold 2');
    assert.deepEqual(train.cell, { dataset: 'noisy', model: 'centroid', fold: 2 });
    assert.equal(tasks.find((t) => t.stage === 'index' && t.cell.dataset === 'noisy')!.label, 'index points · noisy');
    assert.equal(new Set(tasks.map((t) => t.key)).size, tasks.length, 'keys are unique');
  });

  it('keys a variant by its params and data, not its label: the same tasks as the plain dataset', () => {
    const plain = plan(points('{ dir: data }'));
    const tasks = plan(two);
    const byStage = (list: Task[], stage: string) => list.filter((t) => t.stage === stage).map((t) => t.key);
    for (const stage of ['index', 'split', 'train', 'predict', 'explain', 'score']) {
      const clean = tasks.filter((t) => t.stage === stage && t.cell.dataset === 'clean').map((t) => t.key);
      assert.deepEqual(clean, byStage(plain, stage), stage);
    }
    const renamed = plan(points('{ dir: [data, noisy] }', '  names: [a, b]'));
    assert.deepEqual(byStage(renamed, 'train'), byStage(tasks, 'train'), 'names do not key the tensor work');
  });

  it('gives the aggregate every split, and the report each variant’s index and split', () => {
    const tasks = plan(two);
    const aggregate = tasks.find((t) => t.stage === 'aggregate')!;
    const splits = tasks.filter((t) => t.stage === 'split');
    assert.deepEqual(aggregate.refs, {});
    for (const split of splits) assert.ok(aggregate.inputs.includes(split.key));
    const params = aggregate.material.params as { variants: { kind: string; label: string }[] };
    assert.deepEqual(params.variants.filter((v) => v.kind === 'dataset').map((v) => v.label), ['clean', 'noisy']);
    const report = tasks.find((t) => t.stage === 'report')!;
    assert.deepEqual((report.material.params as { datasets: string[] }).datasets, ['clean', 'noisy']);
    const indexes = tasks.filter((t) => t.stage === 'index');
    assert.deepEqual(report.inputs.slice(1, 5), [indexes[0].key, splits[0].key, indexes[1].key, splits[1].key]);
  });

  it('leaves out what exclude rules name, by dataset variant', () => {
    const tasks = plan(`${two}exclude:\n  - { dataset: noisy, explainer: "difference[power=2]" }\n  - { dataset: clean, fold: 1 }\n`);
    const explains = tasks.filter((t) => t.stage === 'explain').map((t) => `${t.cell.dataset} ${t.cell.fold} ${t.cell.explainer}`);
    assert.deepEqual(explains.sort(), ['clean 2 difference[power=1]', 'clean 2 difference[power=2]', 'noisy 1 difference[power=1]', 'noisy 2 difference[power=1]']);
    const whole = plan(`${two}exclude:\n  - { dataset: noisy }\n`);
    assert.equal(whole.filter((t) => t.cell.dataset === 'noisy').length, 0, 'a rule naming only the variant leaves out its index and split too');
  });

  it('plans one variant exactly as a dataset without axes', () => {
    const plain = plan(points('{ dir: data }'));
    const single = plan(points('{ dir: { grid: [data] } }'));
    assert.deepEqual(
      single.map((t) => [t.key, t.label, t.cell]),
      plain.map((t) => [t.key, t.label, t.cell]),
    );
  });
});
