import { UserError } from '../errors.ts';
import type { DatasetIndex, PredefinedFold } from '../plugins/types.ts';
import { seededRandom, shuffled } from '../random.ts';

export interface FoldsConfig {
  k: number;
  seed: number;
  stratify: boolean;
  validation: number;
}

export interface FoldSplit extends PredefinedFold {
  fold: number;
}

export interface BalanceRow {
  fold: number;
  part: 'train' | 'val' | 'test';
  class: string;
  count: number;
}

export interface SplitResult {
  folds: FoldSplit[];
  /** Images per class in every fold's parts. */
  balance: BalanceRow[];
}

/**
 * Stratified k-fold: each class's images, in a seeded order, are dealt to the
 * folds in turn, so every fold holds each class's share to within one image.
 * Each training part then gives up a stratified validation share.
 */
export function splitFolds(index: DatasetIndex, config: FoldsConfig): SplitResult {
  const folds = index.folds ? predefined(index, config) : computed(index, config);
  return { folds, balance: balanceOf(index, folds) };
}

function predefined(index: DatasetIndex, config: FoldsConfig): FoldSplit[] {
  const given = index.folds!;
  if (given.length !== config.k) {
    throw new UserError(`the dataset comes split into ${given.length} folds but the manifest asks for k = ${config.k}; set folds.k: ${given.length}.`);
  }
  return given.map((fold, i) => ({ fold: i + 1, train: [...fold.train], val: [...fold.val], test: [...fold.test] }));
}

function computed(index: DatasetIndex, config: FoldsConfig): FoldSplit[] {
  const { k, seed, stratify, validation } = config;
  const random = seededRandom(seed);
  const groups = stratify
    ? index.classes.map((_, label) => index.items.filter((item) => item.label === label).map((item) => item.id).sort())
    : [index.items.map((item) => item.id).sort()];
  const total = index.items.length;
  if (total < k) throw new UserError(`the dataset has ${total} images, too few for ${k} folds; lower folds.k or add images.`);
  const testOf: string[][] = Array.from({ length: k }, () => []);
  let offset = 0;
  for (const ids of groups) {
    // Continue dealing where the previous class stopped, so fold sizes stay level too.
    shuffled(ids, random).forEach((id, i) => testOf[(offset + i) % k].push(id));
    offset = (offset + ids.length) % k;
  }
  const labelOf = new Map(index.items.map((item) => [item.id, item.label]));
  return testOf.map((test, f) => {
    const testSet = new Set(test);
    const rest = index.items.map((item) => item.id).filter((id) => !testSet.has(id)).sort();
    const val: string[] = [];
    const foldRandom = seededRandom(seed * 1000 + f + 1);
    const restGroups = stratify ? index.classes.map((_, label) => rest.filter((id) => labelOf.get(id) === label)) : [rest];
    for (const ids of restGroups) {
      const count = Math.round(ids.length * validation);
      val.push(...shuffled(ids, foldRandom).slice(0, count));
    }
    const valSet = new Set(val);
    return { fold: f + 1, train: rest.filter((id) => !valSet.has(id)), val: val.sort(), test: test.sort() };
  });
}

function balanceOf(index: DatasetIndex, folds: FoldSplit[]): BalanceRow[] {
  const labelOf = new Map(index.items.map((item) => [item.id, item.label]));
  const rows: BalanceRow[] = [];
  for (const fold of folds) {
    for (const part of ['train', 'val', 'test'] as const) {
      const counts = new Array(index.classes.length).fill(0);
      for (const id of fold[part]) counts[labelOf.get(id)!]++;
      index.classes.forEach((name, label) => rows.push({ fold: fold.fold, part, class: name, count: counts[label] }));
    }
  }
  return rows;
}
