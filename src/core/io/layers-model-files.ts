/**
 * Which files a tfjs layers-model on disk consists of (model.json and the
 * weights files its manifest lists), read without tfjs: the planner keys
 * tasks by them, and the CLI loads the planner on every command.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MissingInputError, UserError } from '../errors.ts';

const MODEL_FILE = 'model.json';

/** Accepts a folder or the path of its model.json. */
export function modelJsonPath(location: string): string {
  return location.endsWith('.json') ? location : path.join(location, MODEL_FILE);
}

/** A weights path that names another machine (a URL). */
export function isRemote(shardPath: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(shardPath);
}

/**
 * The files a layers-model on disk consists of (absolute): its model.json,
 * then every weights file its weightsManifest lists, in order (sharded
 * weights included). What loading reads, so what a cache key must hash.
 * Throws a MissingInputError naming a listed file that is absent.
 */
export function layersModelFiles(location: string): string[] {
  const modelFile = path.resolve(modelJsonPath(location));
  if (!existsSync(modelFile)) throw new MissingInputError(modelFile, 'Model file', 'give the folder that holds a tfjs model.json, or the model.json itself');
  let json: { modelTopology?: unknown; weightsManifest?: unknown };
  try {
    json = JSON.parse(readFileSync(modelFile, 'utf8')) as typeof json;
  } catch (error) {
    throw new UserError(`${modelFile} is not valid JSON (${(error as Error).message}); re-save the model.`);
  }
  if (typeof json !== 'object' || json === null || !('modelTopology' in json)) {
    throw new UserError(`${modelFile} is not a TensorFlow.js model (it has no modelTopology); give the model.json of a tfjs layers-model.`);
  }
  const groups = Array.isArray(json.weightsManifest) ? (json.weightsManifest as { paths?: unknown }[]) : [];
  const shards: string[] = [];
  for (const group of groups) {
    for (const shardPath of Array.isArray(group?.paths) ? group.paths : []) {
      if (typeof shardPath !== 'string') throw new UserError(`${modelFile} lists a weights file that is not a path (${JSON.stringify(shardPath)}); re-save the model.`);
      if (isRemote(shardPath)) throw new UserError(`${modelFile} lists a remote weights file (${shardPath}); download it next to model.json and list it by file name.`);
      const shard = path.resolve(path.dirname(modelFile), shardPath);
      if (!existsSync(shard)) throw new MissingInputError(shard, `Weights file listed in ${modelFile}`, 'copy it next to model.json or re-save the model');
      if (!shards.includes(shard)) shards.push(shard);
    }
  }
  return [modelFile, ...shards];
}
