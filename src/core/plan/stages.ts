/** The stages of a sweep, upstream first. */
export const STAGES = ['index', 'split', 'train', 'predict', 'explain', 'score', 'aggregate', 'report'] as const;
export type Stage = (typeof STAGES)[number];

/** Bumped when a stage's own code changes what it writes: part of every key of that stage. */
export const STAGE_VERSION: Record<Stage, number> = {
  index: 1,
  split: 1,
  train: 1,
  predict: 1,
  explain: 1,
  score: 1,
  aggregate: 4,
  report: 4,
};

export const STAGE_DEPTH: Record<Stage, number> = Object.fromEntries(STAGES.map((s, i) => [s, i])) as Record<Stage, number>;

export type Pool = 'gpu' | 'cpu';

export function isStage(name: string): name is Stage {
  return (STAGES as readonly string[]).includes(name);
}
