import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { STAGES } from '../plan/stages.ts';
import { FileLock } from './lock.ts';
import type { Store } from './store.ts';

export interface Garbage {
  /** Published artifacts no plan refers to. */
  artifacts: { stage: string; key: string; bytes: number }[];
  /** Staging folders (unfinished work) of tasks no plan refers to, and not being worked on. */
  staging: { name: string; bytes: number }[];
  /** Lock files whose owner is gone. */
  staleLocks: string[];
  bytes: number;
}

function sizeOf(target: string): number {
  const stat = statSync(target);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(target).reduce((sum, name) => sum + sizeOf(path.join(target, name)), 0);
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Finds (and with `apply`, deletes) cache entries that none of the kept keys refers to. */
export function collectGarbage(store: Store, keep: Set<string>, apply: boolean): Garbage {
  const garbage: Garbage = { artifacts: [], staging: [], staleLocks: [], bytes: 0 };
  for (const stage of STAGES) {
    for (const key of store.listKeys(stage)) {
      if (keep.has(key)) continue;
      const bytes = sizeOf(store.dir(stage, key));
      garbage.artifacts.push({ stage, key, bytes });
      garbage.bytes += bytes;
    }
  }
  const stagingRoot = path.join(store.root, '.staging');
  for (const name of list(stagingRoot)) {
    const key = name.slice(name.indexOf('-') + 1);
    if (keep.has(key) || FileLock.holder(store.lockFile(key))) continue;
    const bytes = sizeOf(path.join(stagingRoot, name));
    garbage.staging.push({ name, bytes });
    garbage.bytes += bytes;
  }
  const lockRoot = path.join(store.root, '.locks');
  for (const name of list(lockRoot)) {
    if (name.endsWith('.lock') && !FileLock.holder(path.join(lockRoot, name))) garbage.staleLocks.push(name);
  }
  if (apply) {
    for (const { stage, key } of garbage.artifacts) rmSync(path.join(store.root, stage, key), { recursive: true, force: true });
    for (const { name } of garbage.staging) rmSync(path.join(stagingRoot, name), { recursive: true, force: true });
    for (const name of garbage.staleLocks) FileLock.removeIfStale(path.join(lockRoot, name));
  }
  return garbage;
}
