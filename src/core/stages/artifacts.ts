import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { DatasetIndex, FoldData } from '../plugins/types.ts';
import type { SplitResult } from './split.ts';

/** File names of the artifacts core stages write, read by the stages after them. */
export const ARTIFACT_FILES = {
  index: 'index.json',
  split: 'split.json',
  predictions: 'predictions.json',
  rows: 'rows.json',
} as const;

export interface PredictionsFile {
  classes: string[];
  rows: { id: string; label: number; predicted: number; probabilities: number[] }[];
}

export function readJson<T>(file: string): T {
  return JSON.parse(readFileSync(file, 'utf8')) as T;
}

export function readIndex(indexDir: string): DatasetIndex {
  return readJson<DatasetIndex>(path.join(indexDir, ARTIFACT_FILES.index));
}

/** Prefix of item paths that lie inside the index artifact itself (generated datasets). */
export const IN_ARTIFACT = '@index/';

/**
 * Item paths as the index artifact stores them: inside the artifact →
 * `@index/…`; under the manifest's folder → relative to it, so a project can
 * move; elsewhere → absolute.
 */
export function portablePath(file: string, artifactDir: string, manifestDir: string): string {
  const inside = (dir: string) => {
    const relative = path.relative(dir, file);
    return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative.split(path.sep).join('/') : undefined;
  };
  if (!path.isAbsolute(file)) return file;
  const local = inside(artifactDir);
  if (local !== undefined) return IN_ARTIFACT + local;
  return inside(manifestDir) ?? file;
}

export function resolveItemPath(file: string, indexDir: string, manifestDir: string): string {
  if (file.startsWith(IN_ARTIFACT)) return path.join(indexDir, file.slice(IN_ARTIFACT.length));
  return path.resolve(manifestDir, file);
}

/** One fold of the dataset as stage functions see it. */
export function foldData(indexDir: string, splitDir: string, fold: number, imageSize: [number, number], manifestDir: string): FoldData {
  const index = readIndex(indexDir);
  const split = readJson<SplitResult>(path.join(splitDir, ARTIFACT_FILES.split));
  const parts = split.folds.find((f) => f.fold === fold);
  if (!parts) throw new Error(`split artifact ${splitDir} has no fold ${fold}`);
  const byId = new Map(index.items.map((item) => [item.id, item]));
  const pick = (ids: string[]) => ids.map((id) => byId.get(id)!);
  return {
    fold,
    classes: index.classes,
    train: pick(parts.train),
    val: pick(parts.val),
    test: pick(parts.test),
    resolve: (file) => resolveItemPath(file, indexDir, manifestDir),
    imageSize,
  };
}
