import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DatasetIndex } from '../src/core/plugins/types.ts';
import { splitFolds } from '../src/core/stages/split.ts';

function dataset(counts: number[]): DatasetIndex {
  const classes = counts.map((_, i) => `c${i}`);
  const items = counts.flatMap((n, label) => Array.from({ length: n }, (_, i) => ({ id: `c${label}/${i}`, label, image: `c${label}/${i}.png` })));
  return { classes, items };
}

describe('stratified k-fold', () => {
  const index = dataset([50, 23, 17, 41]);
  const config = { k: 5, seed: 3, stratify: true, validation: 0.15 };

  it('gives every class, in every fold, its overall share to within one image', () => {
    const { folds } = splitFolds(index, config);
    const total = index.items.length;
    const labelOf = new Map(index.items.map((i) => [i.id, i.label]));
    for (const fold of folds) {
      const size = fold.test.length;
      index.classes.forEach((_, label) => {
        const expected = (size * index.items.filter((i) => i.label === label).length) / total;
        const got = fold.test.filter((id) => labelOf.get(id) === label).length;
        assert.ok(Math.abs(got - expected) <= 1, `fold ${fold.fold} class ${label}: ${got} vs ${expected.toFixed(2)}`);
      });
    }
  });

  it('partitions the data: every image in exactly one test fold, never in train and test together', () => {
    const { folds } = splitFolds(index, config);
    const tested = folds.flatMap((f) => f.test).sort();
    assert.deepEqual(tested, index.items.map((i) => i.id).sort());
    for (const fold of folds) {
      const parts = [fold.train, fold.val, fold.test].flat();
      assert.equal(new Set(parts).size, index.items.length, `fold ${fold.fold} parts overlap or miss images`);
      assert.ok(Math.abs(fold.val.length - 0.15 * (fold.train.length + fold.val.length)) <= index.classes.length);
    }
  });

  it('is deterministic for a seed and different for another', () => {
    assert.deepEqual(splitFolds(index, config), splitFolds(index, config));
    assert.notDeepEqual(splitFolds(index, config).folds[0].test, splitFolds(index, { ...config, seed: 4 }).folds[0].test);
  });

  it('does not depend on the order images were listed in', () => {
    const reversed = { ...index, items: [...index.items].reverse() };
    assert.deepEqual(splitFolds(reversed, config).folds, splitFolds(index, config).folds);
  });

  it('records a class-balance table per fold and part', () => {
    const { balance } = splitFolds(index, config);
    assert.equal(balance.length, 5 * 3 * 4);
    assert.equal(balance.filter((r) => r.part === 'test').reduce((n, r) => n + r.count, 0), index.items.length);
  });

  it('uses the folds a dataset comes with, and says so when k disagrees', () => {
    const given = { ...dataset([2, 2]), folds: [{ train: ['c0/0', 'c1/0'], val: [], test: ['c0/1', 'c1/1'] }, { train: ['c0/1', 'c1/1'], val: [], test: ['c0/0', 'c1/0'] }] };
    assert.deepEqual(splitFolds(given, { ...config, k: 2 }).folds[1].test, ['c0/0', 'c1/0']);
    assert.throws(() => splitFolds(given, config), /comes split into 2 folds but the manifest asks for k = 5; set folds.k: 2/);
  });
});
