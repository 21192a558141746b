/**
 * Layers-models on the local filesystem: plain @tensorflow/tfjs has no file
 * IO handler in Node (only tfjs-node, an optional dependency, brings one), so
 * salgrid reads and writes the standard model.json + weights.bin layout itself.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MissingInputError, UserError } from '../errors.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { isRemote, modelJsonPath } from './layers-model-files.ts';
// Models read from disk get batch norm that trains as PyTorch's (it keeps tfjs's class name in model.json).
import '../tensor/pytorch-batch-norm.ts';

const WEIGHTS_FILE = 'weights.bin';

const BYTES_PER_VALUE: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

/** Bytes the manifest's weights occupy, or undefined when a string weight makes it unknowable up front. */
function expectedWeightBytes(specs: tf.io.WeightsManifestEntry[]): number | undefined {
  let total = 0;
  for (const spec of specs) {
    const dtype = spec.quantization?.dtype ?? spec.dtype;
    const size = BYTES_PER_VALUE[dtype];
    if (size === undefined) return undefined;
    total += spec.shape.reduce((product, n) => product * n, 1) * size;
  }
  return total;
}

async function readModelJson(file: string): Promise<tf.io.ModelJSON> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new UserError(`No model found: ${file} does not exist (give the folder that holds a tfjs model.json, or the model.json itself).`);
    }
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${file} is not valid JSON (${(error as Error).message}); re-save the model.`);
  }
  if (typeof json !== 'object' || json === null || !('modelTopology' in json)) {
    throw new UserError(`${file} is not a TensorFlow.js model (it has no modelTopology); give the model.json of a tfjs layers-model.`);
  }
  return json as tf.io.ModelJSON;
}

async function readWeights(modelFile: string, manifest: tf.io.WeightsManifestConfig): Promise<[tf.io.WeightsManifestEntry[], ArrayBuffer]> {
  const dir = path.dirname(modelFile);
  const shards: Uint8Array[] = [];
  for (const group of manifest) {
    for (const shardPath of group.paths) {
      if (isRemote(shardPath)) {
        throw new UserError(`${modelFile} lists a remote weights file (${shardPath}); download it next to model.json and list it by file name.`);
      }
      const shard = path.resolve(dir, shardPath);
      try {
        shards.push(await readFile(shard));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new UserError(`Weights file ${shard} listed in ${modelFile} does not exist; copy it next to model.json or re-save the model.`);
        }
        throw error;
      }
    }
  }
  const specs = tf.io.getWeightSpecs(manifest);
  const weights = new Uint8Array(shards.reduce((sum, shard) => sum + shard.length, 0));
  let offset = 0;
  for (const shard of shards) {
    weights.set(shard, offset);
    offset += shard.length;
  }
  const expected = expectedWeightBytes(specs);
  if (expected !== undefined && expected !== weights.length) {
    throw new UserError(`The weights of ${modelFile} hold ${weights.length} bytes but its weightsManifest describes ${expected}; the weights files are truncated or belong to another model — re-save the model.`);
  }
  return [specs, weights.buffer];
}

/** A tfjs IOHandler that saves to and loads from a folder (or a model.json path). */
export function fileModelHandler(location: string): tf.io.IOHandler {
  const modelFile = modelJsonPath(location);
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      if (artifacts.modelTopology instanceof ArrayBuffer) {
        throw new Error('fileModelHandler saves layers-models only; this model has a binary (graph) topology.');
      }
      const weightSpecs = artifacts.weightSpecs ?? [];
      const weights = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts.weightData ?? new ArrayBuffer(0)));
      const modelJson: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology ?? {},
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: weightSpecs }],
      };
      if (artifacts.trainingConfig !== undefined) modelJson.trainingConfig = artifacts.trainingConfig;
      if (artifacts.signature !== undefined) modelJson.signature = artifacts.signature;
      if (artifacts.userDefinedMetadata !== undefined) modelJson.userDefinedMetadata = artifacts.userDefinedMetadata;
      if (artifacts.modelInitializer !== undefined) modelJson.modelInitializer = artifacts.modelInitializer;
      if (artifacts.initializerSignature !== undefined) modelJson.initializerSignature = artifacts.initializerSignature;
      // Weights first, model.json last: a model.json on disk always has its weights beside it.
      await writeFileAtomic(path.join(path.dirname(modelFile), WEIGHTS_FILE), weights);
      await writeFileAtomic(modelFile, JSON.stringify(modelJson));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const modelJson = await readModelJson(modelFile);
      return tf.io.getModelArtifactsForJSON(modelJson, (manifest) => readWeights(modelFile, manifest));
    },
  };
}

/** Saves a layers-model as `<dir>/model.json` + `<dir>/weights.bin`. */
export async function saveLayersModel(model: tf.LayersModel, dir: string, config?: tf.io.SaveConfig): Promise<tf.io.SaveResult> {
  return model.save(fileModelHandler(dir), config);
}

/** Loads a layers-model from a folder or from the path of its model.json (sharded weights included). */
export async function loadLayersModel(location: string, options?: tf.io.LoadOptions): Promise<tf.LayersModel> {
  return tf.loadLayersModel(fileModelHandler(location), options);
}
