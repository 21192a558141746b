import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { classificationMetrics, zeroDivisionWarnings, type ClassificationMetrics } from '../src/core/report/classification.ts';

const rows = (labels: number[], predicted: number[]) => labels.map((label, i) => ({ label, predicted: predicted[i] }));

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) < 1e-12, `${what}: ${actual} ≠ ${expected}`);
}

/** Compares every number of a result with expected fractions (worked out by hand). */
function expectScores(
  got: ClassificationMetrics,
  want: {
    accuracy: number;
    perClass: [precision: number, recall: number, f1: number, support: number][];
    macro: [number, number, number];
    weighted: [number, number, number];
  },
): void {
  close(got.accuracy, want.accuracy, 'accuracy');
  assert.equal(got.perClass.length, want.perClass.length);
  got.perClass.forEach((s, c) => {
    const [precision, recall, f1, support] = want.perClass[c];
    close(s.precision, precision, `${s.class} precision`);
    close(s.recall, recall, `${s.class} recall`);
    close(s.f1, f1, `${s.class} f1`);
    assert.equal(s.support, support, `${s.class} support`);
  });
  for (const kind of ['macro', 'weighted'] as const) {
    const [precision, recall, f1] = want[kind];
    close(got[kind].precision, precision, `${kind} precision`);
    close(got[kind].recall, recall, `${kind} recall`);
    close(got[kind].f1, f1, `${kind} f1`);
  }
}

describe('classification metrics (scikit-learn definitions)', () => {
  it('a class that is never predicted: precision 0 by zero division, named for the warning', () => {
    // y_true = [0,0,0,1,1,1,2,2], y_pred = [0,0,1,1,1,1,0,1], labels=[0,1,2], target_names=['cat','dog','bird']:
    // classification_report(y_true, y_pred, labels=[0,1,2], target_names=..., zero_division=0) and
    // precision_recall_fscore_support(..., average=None | 'macro' | 'weighted', zero_division=0) give
    //   cat  P 2/3 R 2/3 F1 2/3 (tp 2, 3 predicted, 3 true)
    //   dog  P 3/5 R 1   F1 3/4 (tp 3, 5 predicted, 3 true)
    //   bird P 0   R 0   F1 0   (never predicted: precision 0/0 → 0; F1 = 0/(2+0) = 0, no 0/0)
    //   accuracy 5/8; macro P 19/45 R 5/9 F1 17/36; weighted (3,3,2) P 19/40 R 5/8 F1 17/32
    // confusion_matrix(y_true, y_pred, labels=[0,1,2]) = [[2,1,0],[0,3,0],[1,1,0]]
    const got = classificationMetrics(rows([0, 0, 0, 1, 1, 1, 2, 2], [0, 0, 1, 1, 1, 1, 0, 1]), ['cat', 'dog', 'bird']);
    expectScores(got, {
      accuracy: 5 / 8,
      perClass: [
        [2 / 3, 2 / 3, 2 / 3, 3],
        [3 / 5, 1, 3 / 4, 3],
        [0, 0, 0, 2],
      ],
      macro: [19 / 45, 5 / 9, 17 / 36],
      weighted: [19 / 40, 5 / 8, 17 / 32],
    });
    assert.equal(got.n, 8);
    assert.deepEqual(got.confusion, [
      [2, 1, 0],
      [0, 3, 0],
      [1, 1, 0],
    ]);
    assert.deepEqual(got.perClass.map((s) => s.predicted), [3, 5, 0]);
    assert.deepEqual(got.zeroDivision, { precision: ['bird'], recall: [], f1: [] });
    assert.deepEqual(zeroDivisionWarnings(got), ['precision is ill-defined and set to 0 for class with no predicted samples: bird']);
  });

  it('a class absent from the true labels but predicted: recall 0 by zero division, no weight in the weighted average', () => {
    // y_true = [0,0,2,2,2], y_pred = [0,1,2,1,0], labels=[0,1,2], target_names=['a','b','c'], zero_division=0:
    //   a P 1/2 R 1/2 F1 1/2 (support 2)
    //   b P 0/2 = 0 R 0/0 → 0 F1 0/(0+2) = 0 (support 0)
    //   c P 1   R 1/3 F1 2/4 = 1/2 (support 3)
    //   accuracy 2/5; macro P 1/2 R 5/18 F1 1/3; weighted (2,0,3) P 4/5 R 2/5 F1 1/2
    // confusion_matrix = [[1,1,0],[0,0,0],[1,1,1]]
    const got = classificationMetrics(rows([0, 0, 2, 2, 2], [0, 1, 2, 1, 0]), ['a', 'b', 'c']);
    expectScores(got, {
      accuracy: 2 / 5,
      perClass: [
        [1 / 2, 1 / 2, 1 / 2, 2],
        [0, 0, 0, 0],
        [1, 1 / 3, 1 / 2, 3],
      ],
      macro: [1 / 2, 5 / 18, 1 / 3],
      weighted: [4 / 5, 2 / 5, 1 / 2],
    });
    assert.deepEqual(got.confusion, [
      [1, 1, 0],
      [0, 0, 0],
      [1, 1, 1],
    ]);
    assert.deepEqual(got.zeroDivision, { precision: [], recall: ['b'], f1: [] });
  });

  it('a class neither true nor predicted still counts in the macro average (labels=range(C))', () => {
    // y_true = y_pred = [0,1,2], labels=[0,1,2,3], target_names=['a','b','c','d'], zero_division=0:
    //   a, b, c: P = R = F1 = 1; d: all 0/0 → 0, support 0
    //   accuracy 1; macro 3/4 each; weighted (1,1,1,0) 1 each
    const got = classificationMetrics(rows([0, 1, 2], [0, 1, 2]), ['a', 'b', 'c', 'd']);
    expectScores(got, {
      accuracy: 1,
      perClass: [
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [1, 1, 1, 1],
        [0, 0, 0, 0],
      ],
      macro: [3 / 4, 3 / 4, 3 / 4],
      weighted: [1, 1, 1],
    });
    assert.deepEqual(got.zeroDivision, { precision: ['d'], recall: ['d'], f1: ['d'] });
    assert.equal(zeroDivisionWarnings(got).length, 3);
    assert.match(zeroDivisionWarnings(got)[2], /^F1 is ill-defined .* no true nor predicted samples: d$/);
  });

  it('weighted recall equals accuracy, and a perfect or empty input is well defined', () => {
    const got = classificationMetrics(rows([1, 1, 0, 2, 2, 2, 0], [1, 0, 0, 2, 1, 2, 2]), ['x', 'y', 'z']);
    close(got.weighted.recall, got.accuracy, 'weighted recall');
    assert.deepEqual(zeroDivisionWarnings(classificationMetrics(rows([0, 1], [0, 1]), ['x', 'y'])), []);
    const empty = classificationMetrics([], ['x', 'y']);
    assert.ok(Number.isNaN(empty.accuracy));
    assert.equal(empty.n, 0);
    assert.deepEqual(empty.macro, { precision: 0, recall: 0, f1: 0 });
    assert.deepEqual(empty.weighted, { precision: 0, recall: 0, f1: 0 });
  });

  it('rejects labels outside the classes', () => {
    assert.throws(() => classificationMetrics(rows([0, 2], [0, 1]), ['x', 'y']), /row 1: label 2 is not a class index 0…1/);
    assert.throws(() => classificationMetrics(rows([0], [-1]), ['x', 'y']), /row 0: predicted -1/);
    assert.throws(() => classificationMetrics([], []), /at least one class/);
  });
});
