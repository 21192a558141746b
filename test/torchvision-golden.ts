/**
 * Checks shared by the architecture tests against the torchvision goldens:
 * loading the golden state dict (skipped, saying why, where the file is too
 * large to ship and absent) and comparing a model's logits with torchvision's.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readNpy } from '../src/core/io/npy.ts';
import { readStateDict, type StateDict, type TorchTensor } from '../src/core/io/pytorch-state-dict.ts';
import { initWasmBackend } from '../src/core/tensor/wasm-setup.ts';

export async function useBackend(backend: 'cpu' | 'wasm'): Promise<void> {
  if (backend === 'wasm') await initWasmBackend();
  else assert.ok(await tf.setBackend('cpu'));
}

/** A loader of one state dict, read once; absent files mark the test skipped and give undefined. */
export function stateDictLoader(file: string): (t: TestContext) => Promise<StateDict | undefined> {
  let loaded: Promise<StateDict> | undefined;
  return async (t) => {
    if (!existsSync(file)) {
      t.skip(`${file} is not here (too large to copy into the repository)`);
      return undefined;
    }
    return (loaded ??= readStateDict(file));
  };
}

/** The state dict with extra entries appended, names kept in order. */
export function withEntries(state: StateDict, entries: Array<[string, TorchTensor]>): StateDict {
  const all = [...state.entries(), ...entries];
  return Object.assign(new Map(all), { names: all.map(([k]) => k) }) as StateDict;
}

/** The model's logits on the golden `inputs.npy` equal torchvision's `logits.npy` to 1e-4, and predicting leaks nothing. */
export async function assertTorchvisionLogits(model: tf.LayersModel, goldenDir: string): Promise<void> {
  const [inputs, expected] = await Promise.all([readNpy(path.join(goldenDir, 'inputs.npy')), readNpy(path.join(goldenDir, 'logits.npy'))]);
  assert.deepEqual(inputs.shape, [2, 96, 96, 3]);
  const before = tf.memory().numTensors;
  const { shape, values } = tf.tidy(() => {
    const y = model.predict(tf.tensor(inputs.data as Float32Array, inputs.shape)) as tf.Tensor;
    return { shape: y.shape, values: y.dataSync() };
  });
  assert.equal(tf.memory().numTensors, before, 'prediction leaks no tensors');
  assert.deepEqual(shape, expected.shape);
  let worst = 0;
  for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - Number(expected.data[i])));
  assert.ok(worst <= 1e-4, `max |logit − torchvision| on ${tf.getBackend()} is ${worst}`);
}
