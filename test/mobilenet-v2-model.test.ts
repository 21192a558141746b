import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { readStateDict, type StateDict } from '../src/core/io/pytorch-state-dict.ts';
import { permute } from '../src/core/tensor/permutation.ts';
import { countTrainableParams } from '../src/core/tensor/torch-weights.ts';
import { initWasmBackend } from '../src/core/tensor/wasm-setup.ts';
import {
  MOBILENET_V2_TARGET_LAYER, buildMobileNetV2, importTorchMobileNetV2, inferMobileNetV2Config, layerForModule,
  makeDivisible, mobileNetV2FromStateDict, tfjsName, torchName,
} from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { ROOT } from './helpers.ts';
import { assertTorchvisionLogits } from './torchvision-golden.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'mobilenet_v2');

let state: StateDict;

before(async () => {
  await tf.setBackend('cpu');
  state = await readStateDict(path.join(GOLDEN, 'state_dict.pth'));
});

after(async () => {
  await tf.setBackend('cpu');
});

describe('mobilenet-v2 structure', () => {
  it('rounds channels as torchvision does', () => {
    assert.deepEqual([32, 16, 24, 320, 1280].map((c) => makeDivisible(c * 0.5)), [16, 8, 16, 160, 640]);
    assert.deepEqual([32, 24, 96].map((c) => makeDivisible(c * 0.35)), [16, 8, 32]);
  });

  it('has torchvision\'s 3,504,872 trainable parameters at width 1 with 1000 classes', () => {
    const model = buildMobileNetV2();
    try {
      assert.equal(countTrainableParams(model), 3_504_872);
      assert.equal(layerForModule(model, MOBILENET_V2_TARGET_LAYER).name, 'features_18_2');
    } finally {
      model.dispose();
    }
  });

  it('maps torch module paths to layer names and back', () => {
    assert.equal(tfjsName('features.1.conv.0.0'), 'features_1_conv_0_0');
    assert.equal(torchName('features_18_2'), 'features.18.2');
    assert.throws(() => tfjsName('a_b.c'));
  });

  it('permutes torch layouts', () => {
    // [2, 3] → [3, 2]
    assert.deepEqual(Array.from(permute(Float32Array.from([1, 2, 3, 4, 5, 6]), [2, 3], [1, 0])), [1, 4, 2, 5, 3, 6]);
  });
});

async function checkGoldenLogits(): Promise<void> {
  const model = mobileNetV2FromStateDict(state, { widthMult: 0.5, inputSize: 96 });
  try {
    await assertTorchvisionLogits(model, GOLDEN);
  } finally {
    model.dispose();
  }
}

describe('mobilenet-v2 torchvision import', () => {
  it('reads the head size and width from the state dict', () => {
    assert.deepEqual(inferMobileNetV2Config(state), { widthMult: 0.5, numClasses: 4 });
  });

  it('gives torchvision\'s logits on cpu', async () => {
    const before = tf.memory().numTensors;
    await checkGoldenLogits();
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  });

  it('gives torchvision\'s logits on wasm', async () => {
    await initWasmBackend();
    try {
      await checkGoldenLogits();
    } finally {
      await tf.setBackend('cpu');
    }
  });

  it('refuses a state dict of another width, naming the parameter, shapes and the width to use', () => {
    const model = buildMobileNetV2({ widthMult: 1, numClasses: 4, inputSize: 96 });
    try {
      const kernel = model.getLayer('features_0_0').getWeights()[0];
      const before = Array.from(kernel.dataSync());
      assert.throws(() => importTorchMobileNetV2(model, state, { widthMult: 1 }), (error: Error) => {
        assert.ok(isUserError(error), String(error));
        assert.match(error.message, /features\.0\.0\.weight/);
        assert.match(error.message, /\[16, 3, 3, 3\]/);
        assert.match(error.message, /\[32, 3, 3, 3\]/);
        assert.match(error.message, /widthMult=0\.5/);
        return true;
      });
      // Nothing is written when the import fails.
      assert.deepEqual(Array.from(model.getLayer('features_0_0').getWeights()[0].dataSync()), before);
    } finally {
      model.dispose();
    }
  });

  it('refuses a head of another size, suggesting the file\'s numClasses', () => {
    const model = buildMobileNetV2({ widthMult: 0.5, numClasses: 10, inputSize: 96 });
    try {
      assert.throws(() => importTorchMobileNetV2(model, state), (error: Error) => {
        assert.ok(isUserError(error));
        assert.match(error.message, /classifier\.1\.weight.*\[4, 1280\].*\[10, 1280\].*numClasses=4/);
        return true;
      });
    } finally {
      model.dispose();
    }
  });
});
