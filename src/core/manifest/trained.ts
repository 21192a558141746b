/**
 * `trained:` on a model entry: where fold models trained outside salgrid
 * are, as a path pattern with `{fold}` (1-based, as the folds are numbered
 * everywhere else) and `{model}` (the entry's label).
 */
import type { ManifestProblem } from './source.ts';
import { closest } from './suggest.ts';

export const TRAINED_PLACEHOLDERS = ['fold', 'model'] as const;

/** A model entry's `trained:`, as resolved: the pattern and where it is written, for errors found later (a fold's file missing at plan time). */
export interface TrainedModels {
  pattern: string;
  /** `file:line:col` of the `trained:` value. */
  where: string;
  /** JSON pointer of the `trained:` value. */
  pointer: string;
}

const PLACEHOLDER = /\{([^{}]*)\}/g;

/** Problems with a `trained:` pattern: unknown placeholders, and a missing `{fold}` when the sweep has several folds. */
export function trainedProblems(pattern: string, pointer: string, folds: number): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  for (const [text, name] of pattern.matchAll(PLACEHOLDER)) {
    if ((TRAINED_PLACEHOLDERS as readonly string[]).includes(name)) continue;
    const guess = closest(name.trim(), TRAINED_PLACEHOLDERS);
    problems.push({ pointer, message: `unknown placeholder ${text} in "${pattern}"${guess ? `; did you mean {${guess}}?` : ''} (trained: takes {fold}, the 1-based fold number, and {model}, this entry’s label)` });
  }
  // A misspelt {fold} is reported once, as the unknown placeholder it is.
  if (folds > 1 && !pattern.includes('{fold}') && problems.length === 0) {
    problems.push({ pointer, message: `"${pattern}" names one file for all ${folds} folds, but each fold has its own model; add {fold} (the 1-based fold number), e.g. ${withFold(pattern)}` });
  }
  return problems;
}

/** The pattern with `{fold}` added before the extension, as an example for the error. */
function withFold(pattern: string): string {
  const match = /^(.*?)(\.[A-Za-z0-9]+)?$/.exec(pattern)!;
  return `${match[1]}-fold{fold}${match[2] ?? ''}`;
}

/** The path for one model variant and fold. */
export function trainedPath(pattern: string, model: string, fold: number): string {
  return pattern.replace(PLACEHOLDER, (text, name: string) => (name === 'fold' ? String(fold) : name === 'model' ? model : text));
}
