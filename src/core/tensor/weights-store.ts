/**
 * The weights store: imported models (tfjs layers-models with salgrid's
 * sidecar) that manifests name instead of paths, e.g. `pretrained: imagenet`
 * → `<store>/<arch>-imagenet`. It lives in `SALGRID_WEIGHTS`, by default
 * `~/.cache/salgrid/weights`, so every project on a machine shares one copy.
 */
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../errors.ts';

export function weightsStoreDir(env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.SALGRID_WEIGHTS;
  if (configured) return path.resolve(configured);
  const cache = env.XDG_CACHE_HOME ? path.resolve(env.XDG_CACHE_HOME) : path.join(os.homedir(), '.cache');
  return path.join(cache, 'salgrid', 'weights');
}

/** Names in the store are one path segment: letters, digits, `.`, `_`, `-`. */
export function checkStoreName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) {
    throw new UserError(`"${name}" cannot name weights in the store; use letters, digits, ".", "_" and "-" only (e.g. resnet101-imagenet).`);
  }
  return name;
}

export function storedWeightsDir(name: string, env: NodeJS.ProcessEnv = process.env): string {
  return path.join(weightsStoreDir(env), checkStoreName(name));
}

export const IMAGENET_SUFFIX = '-imagenet';
