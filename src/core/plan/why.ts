import type { Store, ArtifactMeta } from '../store/store.ts';
import { canonicalJson, shortKey, type KeyMaterial } from './keys.ts';
import type { Task } from './planner.ts';
import type { Stage } from './stages.ts';

export interface Difference {
  /** Dotted path inside the key material, e.g. `params.metric.thresholds`; `files[<path>]` for a keyed file, with its hashes. */
  path: string;
  before: unknown;
  after: unknown;
}

export interface WhyAnswer {
  key: string;
  label: string;
  stage: Stage;
  /** The nearest cached task of the same stage and grid cell, if any. */
  nearest?: string;
  differences: Difference[];
  /** Stages of inputs whose keys changed (they re-run, so this one must too). */
  changedInputs: string[];
  reason: string;
}

type Identity = string;

function brief(value: unknown): string {
  const text = canonicalJson(value);
  return text.length > 80 ? `${text.slice(0, 77)}…` : text;
}

/** Plugin ids and fold: what stays the same when only a param changes (labels may not). */
function identity(stage: string, material: KeyMaterial): Identity {
  const params = (material.params ?? {}) as Record<string, { id?: string } | number | undefined>;
  const id = (v: unknown) => (v && typeof v === 'object' ? (v as { id?: string }).id : undefined);
  return canonicalJson([stage, material.plugin?.split('@')[0] ?? null, id(params.model), id(params.explainer), params.fold ?? null]);
}

function diff(before: unknown, after: unknown, at: string, out: Difference[]): void {
  if (canonicalJson(before) === canonicalJson(after)) return;
  const isObject = (v: unknown) => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObject(before) && isObject(after)) {
    const keys = new Set([...Object.keys(before as object), ...Object.keys(after as object)]);
    for (const key of [...keys].sort()) diff((before as Record<string, unknown>)[key], (after as Record<string, unknown>)[key], at ? `${at}.${key}` : key, out);
    return;
  }
  out.push({ path: at, before, after });
}

/** Keyed files (`material.files`) compared by path: one difference per file added, removed or with other contents. */
function diffFiles(before: [string, string][] = [], after: [string, string][] = [], out: Difference[]): void {
  const old = new Map(before);
  const now = new Map(after);
  for (const name of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    if (old.get(name) !== now.get(name)) out.push({ path: `files[${name}]`, before: old.get(name) ?? null, after: now.get(name) ?? null });
  }
}

const SHOWN_FILES = 3;

/** The reason's phrases: one per param difference, file differences grouped (an index may see thousands). */
function describe(differences: Difference[]): string[] {
  const files = differences.filter((d) => d.path.startsWith('files['));
  const parts = differences.filter((d) => !files.includes(d)).map((d) => `${d.path}: ${brief(d.before)} → ${brief(d.after)}`);
  if (files.length > 0) {
    const what = (d: Difference) => `${d.path.slice('files['.length, -1)}${d.before === null ? ' (new)' : d.after === null ? ' (gone)' : ''}`;
    const more = files.length > SHOWN_FILES ? ` and ${files.length - SHOWN_FILES} more` : '';
    parts.push(`file contents changed: ${files.slice(0, SHOWN_FILES).map(what).join(', ')}${more}`);
  }
  return parts;
}

/**
 * For each task that must run, what differs from the nearest cached task of
 * the same stage, plugin, model, explainer and fold: the question of why
 * something re-runs, answered from the recorded key material.
 */
export function explainReruns(tasks: Task[], store: Store): WhyAnswer[] {
  const stageOf = new Map(tasks.map((t) => [t.key, t.stage]));
  const metasByStage = new Map<Stage, Map<Identity, ArtifactMeta[]>>();
  const metas = (stage: Stage) => {
    let byIdentity = metasByStage.get(stage);
    if (!byIdentity) {
      byIdentity = new Map();
      for (const key of store.listKeys(stage)) {
        const meta = store.readMeta(stage, key);
        if (!meta?.material) continue;
        const id = identity(stage, meta.material);
        byIdentity.set(id, [...(byIdentity.get(id) ?? []), meta]);
      }
      metasByStage.set(stage, byIdentity);
    }
    return byIdentity;
  };
  return tasks
    .filter((t) => !t.cached)
    .map((task) => {
      const candidates = metas(task.stage).get(identity(task.stage, task.material)) ?? [];
      let best: { meta: ArtifactMeta; differences: Difference[]; changedInputs: string[] } | undefined;
      for (const meta of candidates) {
        const differences: Difference[] = [];
        const { inputs: oldInputs, files: oldFiles, ...oldRest } = meta.material;
        const { inputs: newInputs, files: newFiles, ...newRest } = task.material;
        diff(oldRest, newRest, '', differences);
        diffFiles(oldFiles, newFiles, differences);
        const changedInputs = newInputs.filter((k) => !oldInputs.includes(k)).map((k) => stageOf.get(k) ?? 'input');
        const score = differences.length * 1000 + changedInputs.length;
        if (!best || score < best.differences.length * 1000 + best.changedInputs.length) best = { meta, differences, changedInputs: [...new Set(changedInputs)] };
      }
      if (!best) return { key: task.key, label: task.label, stage: task.stage, differences: [], changedInputs: [], reason: 'no cached task of this stage for this cell: first run' };
      const parts = describe(best.differences);
      if (best.changedInputs.length) parts.push(`its ${best.changedInputs.join(', ')} input(s) changed`);
      return {
        key: task.key,
        label: task.label,
        stage: task.stage,
        nearest: best.meta.key,
        differences: best.differences,
        changedInputs: best.changedInputs,
        reason: `differs from ${shortKey(best.meta.key)}: ${parts.join('; ') || 'same key material (the artifact was removed)'}`,
      };
    });
}
