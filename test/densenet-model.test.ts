import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { readStateDict, type StateDict, type TorchTensor } from '../src/core/io/pytorch-state-dict.ts';
import {
  DENSENET_CAM_ACTIVATION_LAYER,
  DENSENET_CAM_GRADIENT_LAYER,
  DENSENET_TARGET_LAYER,
  buildDenseNet,
  countTrainableParams,
  denseNetFromState,
  denseNetParamsFromState,
  denseNetPreset,
  importTorchDenseNet,
  tfjsName,
  torchName,
} from '../src/plugins/architectures/densenet-model.ts';
import { ROOT } from './helpers.ts';
import { assertTorchvisionLogits, useBackend } from './torchvision-golden.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'densenet');

interface GoldenConfig { growth_rate: number; block_config: number[]; num_init_features: number; num_classes: number; params: number; target_layer: string }
const config = JSON.parse(readFileSync(path.join(GOLDEN, 'config.json'), 'utf8')) as GoldenConfig;
const goldenParams = { growthRate: config.growth_rate, blockConfig: config.block_config, numInitFeatures: config.num_init_features, numClasses: config.num_classes, inputSize: 96 };

let statePromise: Promise<StateDict> | undefined;
const goldenState = (): Promise<StateDict> => (statePromise ??= readStateDict(path.join(GOLDEN, 'state_dict.pth')));

async function goldenLogitsOn(backend: 'cpu' | 'wasm'): Promise<void> {
  await useBackend(backend);
  const model = buildDenseNet(goldenParams);
  importTorchDenseNet(model, await goldenState());
  await assertTorchvisionLogits(model, GOLDEN);
  model.dispose();
}

describe('DenseNet structure', () => {
  it('densenet201 with 1000 classes has torchvision\'s 20,013,928 trainable parameters', () => {
    tf.setBackend('cpu');
    const model = buildDenseNet(denseNetPreset(201));
    assert.equal(countTrainableParams(model), 20_013_928);
    model.dispose();
  });

  it('the golden configuration matches config.json\'s parameter count and names its layers after torch modules', () => {
    const model = buildDenseNet(goldenParams);
    assert.equal(countTrainableParams(model), config.params);
    const names = new Set(model.layers.map((l) => l.name));
    for (const p of ['features.conv0', 'features.denseblock2.denselayer3.conv2', 'features.transition3.conv', 'features.norm5', 'classifier']) {
      assert.ok(names.has(tfjsName(p)), `layer ${p}`);
      assert.equal(torchName(tfjsName(p)), p);
    }
    assert.equal(config.target_layer, DENSENET_TARGET_LAYER);
    assert.equal(DENSENET_CAM_GRADIENT_LAYER, tfjsName('features.norm5'));
    // Activations are taken after the ReLU that follows norm5, gradients at norm5 itself.
    const relu = model.getLayer(DENSENET_CAM_ACTIVATION_LAYER);
    assert.equal(relu.getClassName(), 'ReLU');
    assert.equal((relu.inboundNodes[0].inboundLayers[0] as tf.layers.Layer).name, DENSENET_CAM_GRADIENT_LAYER);
    model.dispose();
  });

  it('presets follow torchvision', () => {
    assert.deepEqual(denseNetPreset(161), { growthRate: 48, blockConfig: [6, 12, 36, 24], numInitFeatures: 96, bnSize: 4, numClasses: 1000, inputSize: 224 });
    assert.deepEqual(denseNetPreset(121).blockConfig, [6, 12, 24, 16]);
    assert.deepEqual(denseNetPreset(169).blockConfig, [6, 12, 32, 32]);
  });
});

describe('DenseNet torchvision import', () => {
  after(async () => {
    await tf.setBackend('cpu');
  });

  it('reads the configuration off the state dict', async () => {
    const found = denseNetParamsFromState(await goldenState());
    assert.deepEqual(found, { numInitFeatures: 24, numClasses: 4, growthRate: 12, bnSize: 4, blockConfig: [2, 3, 2, 2] });
  });

  it('gives torchvision\'s logits on cpu', () => goldenLogitsOn('cpu'));
  it('gives torchvision\'s logits on wasm', () => goldenLogitsOn('wasm'));

  it('sizes the head from the file when numClasses is not given', async () => {
    await tf.setBackend('cpu');
    const { numClasses: _, ...rest } = goldenParams;
    const model = denseNetFromState(await goldenState(), rest);
    assert.deepEqual(model.outputs[0].shape, [null, 4]);
    model.dispose();
  });

  it('refuses a state dict of another configuration, naming the parameter, both shapes and the fitting parameters', async () => {
    await tf.setBackend('cpu');
    const state = await goldenState();
    const wrongGrowth = buildDenseNet({ ...goldenParams, growthRate: 16 });
    const kernelBefore = wrongGrowth.getLayer('features_conv0').getWeights()[0].dataSync().slice();
    assert.throws(() => importTorchDenseNet(wrongGrowth, state), (error: Error) => {
      assert.ok(isUserError(error), String(error));
      assert.match(error.message, /features\.denseblock1\.denselayer1\.conv1\.weight has shape \[48, 24, 1, 1\].*expects \[64, 24, 1, 1\]/);
      assert.match(error.message, /growthRate=12, blockConfig=\[2,3,2,2\], numInitFeatures=24/);
      return true;
    });
    // A failed import writes nothing.
    assert.deepEqual(wrongGrowth.getLayer('features_conv0').getWeights()[0].dataSync(), kernelBefore);
    wrongGrowth.dispose();

    const fewerLayers = buildDenseNet({ ...goldenParams, blockConfig: [2, 3, 2, 1] });
    assert.throws(() => importTorchDenseNet(fewerLayers, state), (error: Error) => isUserError(error) && /features\.norm5\.weight has shape \[51\].*expects \[39\]/.test(error.message) && /blockConfig=\[2,3,2,2\]/.test(error.message));
    fewerLayers.dispose();

    const wrongClasses = buildDenseNet({ ...goldenParams, numClasses: 10 });
    assert.throws(() => importTorchDenseNet(wrongClasses, state), (error: Error) => isUserError(error) && /classifier\.weight has shape \[4, \d+\].*\[10, \d+\]/.test(error.message));
    wrongClasses.dispose();
  });

  it('refuses a state dict with parameters the model has no place for', async () => {
    await tf.setBackend('cpu');
    const state = await goldenState();
    const extraKey = 'features.denseblock4.denselayer3.conv1.weight';
    const entries: Array<[string, TorchTensor]> = [...state.entries(), [extraKey, { dtype: 'float32', shape: [48, 1, 1, 1], data: new Float32Array(48) }]];
    const bigger = Object.assign(new Map(entries), { names: entries.map(([k]) => k) }) as StateDict;
    const model = buildDenseNet(goldenParams);
    assert.throws(() => importTorchDenseNet(model, bigger), (error: Error) => isUserError(error) && error.message.includes(extraKey));
    model.dispose();
  });

  it('names the preset when the file is a full-size torchvision DenseNet', () => {
    // Only shapes matter to the hint, so a state dict of empty tensors stands in for densenet121.
    const model = buildDenseNet({ ...denseNetPreset(121), inputSize: 32 });
    const entries: Array<[string, { dtype: 'float32'; shape: number[]; data: Float32Array }]> = [];
    for (const w of model.weights) {
      const layer = w.originalName.split('/')[0];
      const field = { kernel: 'weight', gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var', bias: 'bias' }[w.originalName.split('/')[1] as 'kernel'];
      const s = w.shape as number[];
      const shape = s.length === 4 ? [s[3], s[2], s[0], s[1]] : s.length === 2 ? [s[1], s[0]] : s;
      entries.push([`${torchName(layer)}.${field}`, { dtype: 'float32', shape, data: new Float32Array(0) }]);
    }
    const state = Object.assign(new Map(entries), { names: entries.map(([k]) => k) }) as StateDict;
    const growth48 = buildDenseNet({ ...denseNetPreset(121), growthRate: 48, inputSize: 32 });
    assert.throws(() => importTorchDenseNet(growth48, state), (error: Error) => isUserError(error) && /densenet121/.test(error.message));
    model.dispose();
    growth48.dispose();
  });
});
