import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import type { StateDict } from '../src/core/io/pytorch-state-dict.ts';
import {
  GOOGLENET_TARGET_LAYER, buildGoogLeNet, ceilPoolSize, countTrainableParams, googLeNetConvLayers, googLeNetFromStateDict,
  importTorchGoogLeNet, layerForModule, tfjsName, torchName,
} from '../src/plugins/architectures/googlenet-model.ts';
import { ROOT } from './helpers.ts';
import { assertTorchvisionLogits, stateDictLoader, useBackend, withEntries } from './torchvision-golden.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'googlenet');
/** 22 MB, too big to copy into the repository: read where the shared goldens sit beside the checkout. */
const STATE_FILE = path.join(ROOT, '..', 'shared', 'golden', 'torchvision', 'googlenet', 'state_dict.pth');

interface GoldenConfig { num_classes: number; transform_input: boolean; aux_logits: boolean; params: number; target_layer: string }
const config = JSON.parse(readFileSync(path.join(GOLDEN, 'config.json'), 'utf8')) as GoldenConfig;
const goldenOptions = { numClasses: config.num_classes, transformInput: config.transform_input, inputSize: 96 };

const goldenState = stateDictLoader(STATE_FILE);

async function goldenLogitsOn(t: TestContext, backend: 'cpu' | 'wasm'): Promise<void> {
  const state = await goldenState(t);
  if (!state) return;
  await useBackend(backend);
  const model = buildGoogLeNet(goldenOptions);
  importTorchGoogLeNet(model, state);
  await assertTorchvisionLogits(model, GOLDEN);
  model.dispose();
}

after(async () => {
  await tf.setBackend('cpu');
});

describe('GoogLeNet structure', () => {
  it('with 1000 classes has torchvision\'s 6,624,904 trainable parameters (no aux heads)', async () => {
    await tf.setBackend('cpu');
    const model = buildGoogLeNet();
    assert.equal(countTrainableParams(model), 6_624_904);
    model.dispose();
  });

  it('ceil-mode pools size their output as PyTorch does', () => {
    // out = ceil((in + 2p − k)/s) + 1, less one when the last window would start in the right padding.
    assert.equal(ceilPoolSize(112, 3, 2), 56);
    assert.equal(ceilPoolSize(48, 3, 2), 24);
    assert.equal(ceilPoolSize(7, 2, 2), 4);
    assert.equal(ceilPoolSize(14, 3, 1, 1), 14);
    assert.equal(ceilPoolSize(5, 2, 2, 1), 3); // ceil(5/2)+1 = 4 would start at 6 ≥ 5 + 1: dropped
    const model = buildGoogLeNet({ numClasses: 4, inputSize: 224 });
    const spatial = (name: string): number => (model.getLayer(name).outputShape as number[])[1];
    assert.deepEqual(['maxpool1', 'maxpool2', 'maxpool3', 'maxpool4', 'inception5b'].map(spatial), [56, 28, 14, 7, 7]);
    model.dispose();
  });

  it('the golden configuration matches config.json and names its layers after torch modules', () => {
    const model = buildGoogLeNet(goldenOptions);
    assert.equal(countTrainableParams(model), config.params);
    const names = new Set(model.layers.map((l) => l.name));
    for (const p of ['conv1.conv', 'conv1.bn', 'conv3.conv', 'inception3a.branch1.conv', 'inception4e.branch2.1.bn', 'inception5b.branch3.1.conv', 'inception5b.branch4.1.conv', 'fc']) {
      assert.ok(names.has(tfjsName(p)), `layer ${p}`);
      assert.equal(torchName(tfjsName(p)), p);
    }
    // torchvision's "5x5" branch uses a 3×3 kernel, and BasicConv2d's batch norm has eps 1e-3.
    assert.deepEqual(model.getLayer('inception3a_branch3_1_conv').getConfig().kernelSize, [3, 3]);
    assert.equal(model.getLayer('conv1_bn').getConfig().epsilon, 1e-3);
    assert.equal(config.target_layer, GOOGLENET_TARGET_LAYER);
    const target = layerForModule(model, GOOGLENET_TARGET_LAYER);
    assert.equal(target.name, 'inception5b');
    assert.equal(target.getClassName(), 'Concatenate');
    assert.equal((target.outputShape as number[])[3], 1024);
    assert.throws(() => layerForModule(model, 'inception6a'), (error: Error) => isUserError(error) && /no module inception6a/.test(error.message));
    assert.equal(googLeNetConvLayers(model).length, 57);
    model.dispose();
  });

  it('transformInput re-normalises each channel as torchvision does', () => {
    const plain = buildGoogLeNet({ numClasses: 3, inputSize: 32 });
    const transformed = buildGoogLeNet({ numClasses: 3, inputSize: 32, transformInput: true });
    assert.equal(countTrainableParams(transformed), countTrainableParams(plain));
    transformed.setWeights(plain.getWeights());
    const [a, b] = tf.tidy(() => {
      const x = tf.randomNormal([1, 32, 32, 3], 0, 1, 'float32', 3);
      const manual = tf.stack([0, 1, 2].map((c) => {
        const [std, mean] = [[0.229, 0.485], [0.224, 0.456], [0.225, 0.406]][c];
        return x.slice([0, 0, 0, c], [1, 32, 32, 1]).squeeze([3]).mul(std / 0.5).add((mean - 0.5) / 0.5);
      }), 3);
      return [(transformed.predict(x) as tf.Tensor).dataSync(), (plain.predict(manual) as tf.Tensor).dataSync()];
    });
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-5, `logit ${i}: ${a[i]} vs ${b[i]}`);
    plain.dispose();
    transformed.dispose();
  });

  it('refuses bad options with a UserError', () => {
    assert.throws(() => buildGoogLeNet({ numClasses: 0 }), (error: Error) => isUserError(error) && /numClasses/.test(error.message));
    assert.throws(() => buildGoogLeNet({ inputSize: 16 }), (error: Error) => isUserError(error) && /inputSize/.test(error.message));
  });
});

describe('GoogLeNet torchvision import', () => {
  it('gives torchvision\'s logits on cpu', (t) => goldenLogitsOn(t, 'cpu'));
  it('gives torchvision\'s logits on wasm', (t) => goldenLogitsOn(t, 'wasm'));

  it('sizes the head from the file and ignores the aux heads\' weights', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    await tf.setBackend('cpu');
    const withAux = withEntries(state, [
      ['aux1.conv.conv.weight', { dtype: 'float32', shape: [128, 512, 1, 1], data: new Float32Array(128 * 512) }],
      ['aux2.fc2.bias', { dtype: 'float32', shape: [4], data: new Float32Array(4) }],
    ]);
    const model = googLeNetFromStateDict(withAux, { inputSize: 96 });
    assert.deepEqual(model.outputs[0].shape, [null, 4]);
    model.dispose();
  });

  it('refuses a state dict of another configuration or with unknown parameters, leaving the model untouched', async (t) => {
    const state = await goldenState(t);
    if (!state) return;
    await tf.setBackend('cpu');
    const wrongClasses = buildGoogLeNet({ ...goldenOptions, numClasses: 10 });
    const kernelBefore = wrongClasses.getLayer('conv1_conv').getWeights()[0].dataSync().slice();
    assert.throws(() => importTorchGoogLeNet(wrongClasses, state), (error: Error) => {
      assert.ok(isUserError(error), String(error));
      assert.match(error.message, /fc\.weight has shape \[4, 1024\].*expects \[10, 1024\]/);
      assert.match(error.message, /numClasses=4/);
      return true;
    });
    assert.deepEqual(wrongClasses.getLayer('conv1_conv').getWeights()[0].dataSync(), kernelBefore);
    wrongClasses.dispose();

    const extraKey = 'inception6a.branch1.conv.weight';
    const model = buildGoogLeNet(goldenOptions);
    assert.throws(() => importTorchGoogLeNet(model, withEntries(state, [[extraKey, { dtype: 'float32', shape: [1], data: new Float32Array(1) }]])), (error: Error) => isUserError(error) && error.message.includes(extraKey));
    const missing = new Map([...state.entries()].filter(([k]) => !k.startsWith('inception5b.')));
    const partial = Object.assign(missing, { names: [...missing.keys()] }) as StateDict;
    assert.throws(() => importTorchGoogLeNet(model, partial), (error: Error) => isUserError(error) && /no parameter inception5b\.branch\d\.\S*weight/.test(error.message) && /does not look like a torchvision GoogLeNet/.test(error.message));
    model.dispose();
  });
});
