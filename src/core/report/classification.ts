/**
 * Classification metrics as scikit-learn defines them: for true labels `y`
 * and predictions `p` over classes `0…C−1`, the values here equal
 *
 *   accuracy_score(y, p)
 *   precision_recall_fscore_support(y, p, labels=range(C), average=None | 'macro' | 'weighted', zero_division=0)
 *   confusion_matrix(y, p, labels=range(C))
 *
 * and so classification_report(y, p, labels=range(C), target_names=classes,
 * zero_division=0). Every class counts, also one that neither occurs nor is
 * predicted (sklearn drops such a class only when `labels` is not given).
 */

export interface LabelledPrediction {
  /** Index of the true class. */
  label: number;
  /** Index of the predicted class. */
  predicted: number;
}

export interface ClassScores {
  class: string;
  /** tp / (tp + fp); 0 when the class is never predicted. */
  precision: number;
  /** tp / (tp + fn); 0 when the class has no true samples. */
  recall: number;
  /** 2·tp / (2·tp + fp + fn), the harmonic mean of precision and recall; 0 where that is 0/0. */
  f1: number;
  /** Number of true samples of the class. */
  support: number;
  /** Number of samples predicted as the class. */
  predicted: number;
}

export interface AveragedScores {
  precision: number;
  recall: number;
  f1: number;
}

export interface ClassificationMetrics {
  classes: string[];
  /** Number of samples. */
  n: number;
  /** Share of samples predicted right; NaN without samples (as sklearn's accuracy_score of nothing). */
  accuracy: number;
  /** One entry per class, in class order. */
  perClass: ClassScores[];
  /** Unweighted means over all classes (sklearn average='macro'). */
  macro: AveragedScores;
  /** Means over classes weighted by support (sklearn average='weighted'); the unweighted mean if no class has support. */
  weighted: AveragedScores;
  /** confusion[true][predicted] = count: rows are true classes, columns predicted ones (sklearn's convention). */
  confusion: number[][];
  /**
   * Classes whose value was 0/0 and set to 0 (sklearn's zero_division=0),
   * where sklearn's default zero_division='warn' raises UndefinedMetricWarning:
   * precision for classes never predicted, recall for classes with no true
   * samples, F1 for classes with neither.
   */
  zeroDivision: { precision: string[]; recall: string[]; f1: string[] };
}

/** 0 where sklearn (zero_division=0) would divide 0 by 0. */
const divide = (numerator: number, denominator: number) => (denominator === 0 ? 0 : numerator / denominator);

export function classificationMetrics(rows: readonly LabelledPrediction[], classes: readonly string[]): ClassificationMetrics {
  const count = classes.length;
  if (count === 0) throw new Error('classification metrics need at least one class');
  const confusion = classes.map(() => new Array<number>(count).fill(0));
  for (const [i, row] of rows.entries()) {
    for (const [what, value] of [['label', row.label], ['predicted', row.predicted]] as const) {
      if (!Number.isInteger(value) || value < 0 || value >= count) throw new Error(`row ${i}: ${what} ${value} is not a class index 0…${count - 1}`);
    }
    confusion[row.label][row.predicted]++;
  }
  const zeroDivision: ClassificationMetrics['zeroDivision'] = { precision: [], recall: [], f1: [] };
  const perClass = classes.map((name, c): ClassScores => {
    const tp = confusion[c][c];
    const support = confusion[c].reduce((a, b) => a + b, 0);
    const predicted = confusion.reduce((sum, row) => sum + row[c], 0);
    if (predicted === 0) zeroDivision.precision.push(name);
    if (support === 0) zeroDivision.recall.push(name);
    if (support + predicted === 0) zeroDivision.f1.push(name);
    return { class: name, precision: divide(tp, predicted), recall: divide(tp, support), f1: divide(2 * tp, support + predicted), support, predicted };
  });
  const correct = confusion.reduce((sum, row, c) => sum + row[c], 0);
  const average = (weight: (s: ClassScores) => number): AveragedScores => {
    // sklearn's _nanaverage ignores weights that are all zero.
    const w = perClass.some((s) => weight(s) !== 0) ? weight : () => 1;
    const total = perClass.reduce((sum, s) => sum + w(s), 0);
    const mean = (key: keyof AveragedScores) => perClass.reduce((sum, s) => sum + w(s) * s[key], 0) / total;
    return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
  };
  return {
    classes: [...classes],
    n: rows.length,
    accuracy: rows.length === 0 ? Number.NaN : correct / rows.length,
    perClass,
    macro: average(() => 1),
    weighted: average((s) => s.support),
    confusion,
    zeroDivision,
  };
}

/** sklearn's UndefinedMetricWarning texts for the zero divisions of a result, one line each; none if there were none. */
export function zeroDivisionWarnings(metrics: ClassificationMetrics): string[] {
  const { precision, recall, f1 } = metrics.zeroDivision;
  const line = (metric: string, list: string[], samples: string) =>
    list.length === 0 ? [] : [`${metric} is ill-defined and set to 0 for ${list.length === 1 ? 'class' : 'classes'} with no ${samples} samples: ${list.join(', ')}`];
  return [...line('precision', precision, 'predicted'), ...line('recall', recall, 'true'), ...line('F1', f1, 'true nor predicted')];
}
