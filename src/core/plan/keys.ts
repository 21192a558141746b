import { createHash } from 'node:crypto';
import stringify from 'safe-stable-stringify';

/** Canonical JSON: object keys sorted, no whitespace, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return stringify(value) ?? 'null';
}

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Everything that determines a task's output; its SHA-256 is the task's cache key. */
export interface KeyMaterial {
  stage: string;
  /** Version of the stage's own code. */
  version: number;
  /** `id@version` of the plugin the stage calls, or null for core stages. */
  plugin: string | null;
  params: unknown;
  /** Keys of the tasks whose artifacts this one reads, in a fixed order. */
  inputs: string[];
  /**
   * [path relative to the manifest, sha256] of the files the task reads
   * besides its inputs' artifacts: the data files (index), pretrained
   * weights (train), files explainer or metric params name (explain,
   * score). Absent when there are none, so such keys stay as they were.
   */
  files?: [string, string][];
}

export function cacheKey(material: KeyMaterial): string {
  return sha256(canonicalJson(material));
}

export function shortKey(key: string): string {
  return key.slice(0, 10);
}
