/** salgrid's FusedBatchNorm gradient gives tfjs's own results bit for bit, without its activation-sized Tile. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { registerBatchNormGradient } from '../src/core/tensor/batch-norm-gradient.ts';
import { useBackend } from './torchvision-golden.ts';

// tfjs's own gradient, captured before salgrid's replaces it.
const original = tf.getGradient('FusedBatchNorm')!;

function gradients(config: tf.GradConfig, rank1: boolean): Float32Array[] {
  return tf.tidy(() => {
    const random = (shape: number[], seed: number, min = -2, max = 2) => tf.randomUniform(shape, min, max, 'float32', seed);
    const x = random([2, 5, 6, 3], 1);
    const statShape = rank1 ? [3] : [2, 5, 6, 3];
    const mean = random(statShape, 2);
    const variance = random(statShape, 3, 0.1, 2);
    const scale = random(statShape, 4);
    const dy = random([2, 5, 6, 3], 5);
    const grads = config.gradFunc(dy, [x, mean, variance, scale], { varianceEpsilon: 1e-5 } as unknown as tf.NamedAttrMap);
    return ['x', 'mean', 'variance', 'scale', 'offset'].map((name) => (grads[name]() as tf.Tensor).dataSync() as Float32Array);
  });
}

describe('FusedBatchNorm gradient', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    for (const rank1 of [true, false]) {
      it(`equals tfjs's bit for bit on ${backend} (${rank1 ? 'per-channel' : 'full-shape'} statistics)`, async () => {
        await useBackend(backend);
        const want = gradients(original, rank1);
        registerBatchNormGradient();
        const mine = tf.getGradient('FusedBatchNorm')!;
        assert.notEqual(mine, original);
        const got = gradients(mine, rank1);
        got.forEach((values, i) => assert.deepEqual(Array.from(values), Array.from(want[i]), `gradient ${i}`));
      });
    }
  }
});
