import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import type { StateDict, TorchTensor } from '../src/core/io/pytorch-state-dict.ts';
import {
  RESNET_TARGET_LAYER, buildResNet, countTrainableParams, importTorchResNet, layerForModule, resNetConvLayers,
  resNetFromStateDict, resNetParamsFromState, resNetPreset, tfjsName, torchName,
} from '../src/plugins/architectures/resnet-model.ts';
import { ROOT } from './helpers.ts';
import { assertTorchvisionLogits, stateDictLoader, useBackend, withEntries } from './torchvision-golden.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'resnet');
/** 14 MB, too big to copy into the repository: read where the shared goldens sit beside the checkout. */
const STATE_FILE = path.join(ROOT, '..', 'shared', 'golden', 'torchvision', 'resnet', 'state_dict.pth');

interface GoldenConfig { layers: number[]; width_per_group: number; num_classes: number; params: number; target_layer: string }
const config = JSON.parse(readFileSync(path.join(GOLDEN, 'config.json'), 'utf8')) as GoldenConfig;
const goldenParams = { block: 'bottleneck' as const, layers: config.layers, widthPerGroup: config.width_per_group, numClasses: config.num_classes, inputSize: 96 };

const goldenState = stateDictLoader(STATE_FILE);

async function goldenLogitsOn(t: TestContext, backend: 'cpu' | 'wasm'): Promise<void> {
  const state = await goldenState(t);
  if (!state) return;
  await useBackend(backend);
  const model = buildResNet(goldenParams);
  importTorchResNet(model, state);
  await assertTorchvisionLogits(model, GOLDEN);
  model.dispose();
}

after(async () => {
  await tf.setBackend('cpu');
});

describe('ResNet structure', () => {
  it('resnet101 with 1000 classes has torchvision\'s 44,549,160 trainable parameters', async () => {
    await tf.setBackend('cpu');
    const model = buildResNet(resNetPreset(101));
    assert.equal(countTrainableParams(model), 44_549_160);
    model.dispose();
  });

  it('resnet18 and resnet50 have torchvision\'s parameter counts', () => {
    for (const [depth, count] of [[18, 11_689_512], [50, 25_557_032]] as const) {
      const model = buildResNet(resNetPreset(depth));
      assert.equal(countTrainableParams(model), count, `resnet${depth}`);
      model.dispose();
    }
  });

  it('the golden configuration matches config.json and names its layers after torch modules', () => {
    const model = buildResNet(goldenParams);
    assert.equal(countTrainableParams(model), config.params);
    const names = new Set(model.layers.map((l) => l.name));
    for (const p of ['conv1', 'bn1', 'layer1.0.conv3', 'layer2.1.bn2', 'layer3.0.downsample.0', 'layer3.0.downsample.1', 'layer4.0.conv2', 'fc']) {
      assert.ok(names.has(tfjsName(p)), `layer ${p}`);
      assert.equal(torchName(tfjsName(p)), p);
    }
    // Only the first block of a stage changes shape, so only it downsamples.
    assert.ok(!names.has(tfjsName('layer2.1.downsample.0')));
    // The CAM target resolves to the last block's output (its final ReLU), both as `layer4` and as `layer4.0`.
    assert.equal(config.target_layer, 'layer4.0');
    assert.equal(layerForModule(model, RESNET_TARGET_LAYER).name, 'layer4_0');
    assert.equal(layerForModule(model, config.target_layer).name, 'layer4_0');
    assert.equal(layerForModule(model, 'layer4').getClassName(), 'ReLU');
    assert.throws(() => layerForModule(model, 'layer5'), (error: Error) => isUserError(error) && /no module layer5/.test(error.message));
    const convs = resNetConvLayers(model);
    assert.equal(convs[0], 'conv1');
    assert.ok(convs.includes('layer4_0_downsample_0'));
    // The stride sits in the 3×3 convolution (torchvision's v1.5), not in conv1.
    const strides = (name: string): number[] => (model.getLayer(name).getConfig().strides as number[]);
    assert.deepEqual(strides('layer2_0_conv1'), [1, 1]);
    assert.deepEqual(strides('layer2_0_conv2'), [2, 2]);
    model.dispose();
  });

  it('basic-block networks have no conv3', () => {
    const model = buildResNet({ ...resNetPreset(18), numClasses: 4, inputSize: 64 });
    assert.ok(!model.layers.some((l) => l.name === 'layer1_0_conv3'));
    assert.ok(!model.layers.some((l) => l.name === 'layer1_0_downsample_0'), 'basic layer1 keeps 64 channels');
    assert.deepEqual(model.outputs[0].shape, [null, 4]);
    model.dispose();
  });

  it('refuses bad parameters with a UserError', () => {
    const bad = (params: object, pattern: RegExp): void => {
      assert.throws(() => buildResNet(params), (error: Error) => isUserError(error) && pattern.test(error.message));
    };
    bad({ layers: [1, 2, 3] }, /layers \[1,2,3\]/);
    bad({ block: 'wide' }, /block "wide"/);
    bad({ block: 'basic', layers: [2, 2, 2, 2], widthPerGroup: 32 }, /basic block supports only/);
    bad({ groups: 32 }, /groups=32/);
    bad({ inputSize: 16 }, /inputSize ≥ 32/);
    assert.throws(() => resNetPreset(77 as 18), (error: Error) => isUserError(error) && /depth 77/.test(error.message));
  });
});

describe('ResNet torchvision import', () => {
  it('reads the configuration off the state dict', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    assert.deepEqual(resNetParamsFromState(state), { numClasses: 4, block: 'bottleneck', layers: [1, 2, 1, 1], widthPerGroup: 16 });
  });

  it('gives torchvision\'s logits on cpu', (t) => goldenLogitsOn(t, 'cpu'));
  it('gives torchvision\'s logits on wasm', (t) => goldenLogitsOn(t, 'wasm'));

  it('sizes the head from the file when numClasses is not given', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    await tf.setBackend('cpu');
    const { numClasses: _, ...rest } = goldenParams;
    const model = resNetFromStateDict(state, rest);
    assert.deepEqual(model.outputs[0].shape, [null, 4]);
    model.dispose();
  });

  it('refuses a state dict of another configuration, naming the parameter, both shapes and the fitting parameters', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    await tf.setBackend('cpu');
    const wider = buildResNet({ ...goldenParams, widthPerGroup: 32 });
    const kernelBefore = wider.getLayer('conv1').getWeights()[0].dataSync().slice();
    assert.throws(() => importTorchResNet(wider, state), (error: Error) => {
      assert.ok(isUserError(error), String(error));
      assert.match(error.message, /layer1\.0\.conv1\.weight has shape \[16, 64, 1, 1\].*expects \[32, 64, 1, 1\]/);
      assert.match(error.message, /block='bottleneck', layers=\[1,2,1,1\], widthPerGroup=16, numClasses=4/);
      return true;
    });
    // A failed import writes nothing.
    assert.deepEqual(wider.getLayer('conv1').getWeights()[0].dataSync(), kernelBefore);
    wider.dispose();

    const fewer = buildResNet({ ...goldenParams, layers: [1, 1, 1, 1] });
    assert.throws(() => importTorchResNet(fewer, state), (error: Error) => isUserError(error) && /layer2\.1\./.test(error.message) && /no place for/.test(error.message));
    fewer.dispose();

    const basic = buildResNet({ ...goldenParams, block: 'basic', widthPerGroup: 64 });
    assert.throws(() => importTorchResNet(basic, state), (error: Error) => isUserError(error) && /block='bottleneck'/.test(error.message));
    basic.dispose();

    const wrongClasses = buildResNet({ ...goldenParams, numClasses: 10 });
    assert.throws(() => importTorchResNet(wrongClasses, state), (error: Error) => isUserError(error) && /fc\.weight has shape \[4, 2048\].*\[10, 2048\]/.test(error.message));
    wrongClasses.dispose();
  });

  it('refuses a state dict with parameters the model has no place for', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    const extraKey = 'layer4.1.conv1.weight';
    const bigger = withEntries(state, [[extraKey, { dtype: 'float32', shape: [16, 256, 1, 1], data: new Float32Array(16 * 256) }]]);
    const model = buildResNet(goldenParams);
    assert.throws(() => importTorchResNet(model, bigger), (error: Error) => isUserError(error) && error.message.includes(extraKey));
    model.dispose();
  });

  it('names the preset when the file is a full-size torchvision ResNet', () => {
    // Only shapes matter to the hint, so a state dict of empty tensors stands in for resnet50.
    const model = buildResNet({ ...resNetPreset(50), inputSize: 32 });
    const entries: Array<[string, TorchTensor]> = [];
    for (const w of model.weights) {
      const [layer, field] = w.originalName.split('/');
      const key = { kernel: 'weight', gamma: 'weight', beta: 'bias', moving_mean: 'running_mean', moving_variance: 'running_var', bias: 'bias' }[field as 'kernel'];
      const s = w.shape as number[];
      const shape = s.length === 4 ? [s[3], s[2], s[0], s[1]] : s.length === 2 ? [s[1], s[0]] : s;
      entries.push([`${torchName(layer)}.${key}`, { dtype: 'float32', shape, data: new Float32Array(0) }]);
    }
    const state = Object.assign(new Map(entries), { names: entries.map(([k]) => k) }) as StateDict;
    const resnet101 = buildResNet({ ...resNetPreset(101), inputSize: 32 });
    assert.throws(() => importTorchResNet(resnet101, state), (error: Error) => isUserError(error) && /resnet50/.test(error.message));
    model.dispose();
    resnet101.dispose();
  });
});
