import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { KeyMaterial } from '../plan/keys.ts';
import type { Stage } from '../plan/stages.ts';
import { removeTemporaryFiles, writeFileAtomic } from './atomic.ts';
import { FileLock } from './lock.ts';

const KEY_PATTERN = /^[0-9a-f]{64}$/;

/** What every artifact records about itself, written last. */
export interface ArtifactMeta {
  key: string;
  stage: Stage;
  material: KeyMaterial;
  /** Who, in the grid, the task was for (model, fold, explainer, metric labels). */
  context: Record<string, string | number>;
  started: string;
  finished: string;
  ms: number;
  host: string;
  pid: number;
  /** Tensor tasks: the backend that ran them (name, engine, device, the onnx engine's threads). */
  backend?: { name: string; device: string; engine?: 'onnx' | 'tfjs'; threads?: number; tfjs?: string };
  [extra: string]: unknown;
}

/**
 * The content-addressed cache: `<root>/<stage>/<key>/` holds one complete
 * artifact. Tasks write into `<root>/.staging/<stage>-<key>/` (kept across
 * crashes for checkpoints) and are renamed into place whole, meta.json last.
 */
export class Store {
  constructor(readonly root: string) {}

  dir(stage: Stage, key: string): string {
    return path.join(this.root, stage, key);
  }

  stagingDir(stage: Stage, key: string): string {
    return path.join(this.root, '.staging', `${stage}-${key}`);
  }

  lockFile(key: string): string {
    return path.join(this.root, '.locks', `${key}.lock`);
  }

  has(stage: Stage, key: string): boolean {
    return existsSync(this.dir(stage, key));
  }

  /** Every published key of a stage, from one directory listing. */
  listKeys(stage: Stage): Set<string> {
    try {
      return new Set(readdirSync(path.join(this.root, stage)).filter((name) => KEY_PATTERN.test(name)));
    } catch {
      return new Set();
    }
  }

  readMeta(stage: Stage, key: string): ArtifactMeta | null {
    try {
      return JSON.parse(readFileSync(path.join(this.dir(stage, key), 'meta.json'), 'utf8')) as ArtifactMeta;
    } catch {
      return null;
    }
  }

  async prepareStaging(stage: Stage, key: string): Promise<string> {
    const dir = this.stagingDir(stage, key);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Writes meta.json into the staging folder and renames it into place.
   * Returns false when another process published the same key first (ours
   * is then discarded: both are the same computation).
   */
  async publish(stage: Stage, key: string, meta: ArtifactMeta): Promise<boolean> {
    const staging = this.stagingDir(stage, key);
    // A previous attempt killed mid-write may have left temporary files: they are not part of the artifact.
    await removeTemporaryFiles(staging);
    await writeFileAtomic(path.join(staging, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);
    await mkdir(path.join(this.root, stage), { recursive: true });
    try {
      await rename(staging, this.dir(stage, key));
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && this.has(stage, key)) {
        await rm(staging, { recursive: true, force: true });
        return false;
      }
      throw error;
    }
  }

  tryLock(key: string): FileLock | null {
    return FileLock.tryAcquire(this.lockFile(key));
  }
}
