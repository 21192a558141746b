import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { inputGradient, layerGradient, withConstantWeights } from '../src/core/tensor/gradients.ts';
import { concatNet, conv, makeNet, mobileNetV2, randomizeWeights, SMALL_V2_BLOCKS, smallCnn, tappedTwin, type Net } from './nets.ts';

before(async () => {
  await tf.setBackend('cpu');
});

const WEIGHT_GRADIENT = /BackpropFilter/;

function score(output: tf.Tensor, target: number[]): tf.Scalar {
  const flat = tf.reshape(output, [output.shape[0], -1]);
  return tf.sum(tf.mul(flat, tf.oneHot(target, flat.shape[1] as number, 1, 0, 'float32')));
}

/** The plain way: tf.grad through model.apply, every weight gradient included. */
function plainInputGradient(model: tf.LayersModel, x: tf.Tensor, target: number[]): tf.Tensor {
  return tf.grad((input: tf.Tensor) => score(model.apply(input) as tf.Tensor, target))(x);
}

/** Activations from a tf.model output; gradients as ∂score/∂delta at delta = 0, delta added after the layer. */
function plainLayerGradient(net: Net, name: string, x: tf.Tensor, target: number[]): { activations: tf.Tensor; gradients: tf.Tensor } {
  const { twin, activation } = tappedTwin(net, name);
  return tf.tidy(() => {
    const activations = activation.predict(x) as tf.Tensor;
    const gradients = tf.grad((delta: tf.Tensor) => score(twin.apply([x, delta]) as tf.Tensor, target))(tf.zerosLike(activations));
    return { activations, gradients };
  });
}

function assertClose(actual: tf.Tensor, expected: tf.Tensor, what: string, tolerance = 1e-5): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const scale = tf.max(tf.abs(expected)).dataSync()[0];
  const error = tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0];
  assert.ok(scale > 0, `${what}: the reference is all zeros, so the comparison would prove nothing`);
  assert.ok(error <= tolerance * scale, `${what}: max error ${error} exceeds ${tolerance} × max |reference| ${scale}`);
}

/** f's result (the caller disposes it) and the names of the kernels it ran. */
async function profiled<T>(f: () => T): Promise<{ result: T; kernels: string[] }> {
  const profile = await tf.profile(f as () => tf.TensorContainer);
  return { result: profile.result as T, kernels: profile.kernels.map((kernel) => kernel.name) };
}

async function kernelNames(f: () => tf.TensorContainer): Promise<string[]> {
  const { result, kernels } = await profiled(f);
  tf.dispose(result as tf.TensorContainer);
  return kernels;
}

function assertNoLeak(f: () => tf.TensorContainer, what: string): void {
  tf.dispose(f());
  const before = tf.memory().numTensors;
  for (let i = 0; i < 2; i++) tf.dispose(f());
  assert.equal(tf.memory().numTensors, before, `${what} leaks tensors`);
}

function images(net: Net, batch: number, seed = 5): tf.Tensor {
  return tf.randomUniform([batch, ...net.inputShape], -1, 1, 'float32', seed);
}

/** The checks every net gets: values against the plain path, no weight-gradient kernel, no leak. */
function checkNet(label: string, makeModel: () => Net, layers: string[], target: number[]): void {
  describe(label, () => {
    let net: Net;
    let x: tf.Tensor;
    before(() => {
      net = makeModel();
      x = images(net, target.length);
    });

    it('input gradient equals plain tf.grad, and no weight-gradient kernel runs where the plain path runs some', async () => {
      const plain = await profiled(() => plainInputGradient(net.model, x, target));
      const ours = await profiled(() => inputGradient(net.model, x, target));
      assert.ok(plain.kernels.some((name) => WEIGHT_GRADIENT.test(name)), 'the plain path was expected to compute filter gradients');
      assert.deepEqual(ours.kernels.filter((name) => WEIGHT_GRADIENT.test(name)), []);
      assertClose(ours.result, plain.result, 'input gradient');
      tf.dispose([ours.result, plain.result]);
    });

    for (const layer of layers) {
      it(`gradient at layer ${layer} equals the reference built from tf.model outputs, with no weight-gradient kernel`, async () => {
        const ours = await profiled(() => layerGradient(net.model, x, layer, target));
        assert.deepEqual(ours.kernels.filter((name) => WEIGHT_GRADIENT.test(name)), []);
        const expected = plainLayerGradient(net, layer, x, target);
        assertClose(ours.result.activations, expected.activations, `${layer} activations`);
        assertClose(ours.result.gradients, expected.gradients, `${layer} gradients`);
        tf.dispose([ours.result.activations, ours.result.gradients, expected.activations, expected.gradients]);
      });
    }

    it('leaks no tensors', () => {
      assertNoLeak(() => inputGradient(net.model, x, target), 'inputGradient');
      assertNoLeak(() => {
        const { activations, gradients } = layerGradient(net.model, x, layers[0], target);
        return [activations, gradients];
      }, 'layerGradient');
    });
  });
}

checkNet('small CNN (conv+bias+relu, max pool, batch norm, depthwise, GAP, dropout, dense)', () => makeNet('small', [16, 16, 3], smallCnn), ['bn1', 'conv2'], [0, 3, 4]);
checkNet(
  'MobileNetV2-shaped net at 64×64 (inverted residuals, relu6, residual Add)',
  () => makeNet('mnv2', [64, 64, 3], mobileNetV2(SMALL_V2_BLOCKS, 64, 10)),
  ['block_3_expand_relu', 'block_2_add', 'out_relu'],
  [1, 7],
);
checkNet('Concatenate and squeeze-excite Multiply', () => makeNet('cat', [12, 12, 3], concatNet(false)), ['cat', 'b_conv'], [2, 0]);

describe('nested models', () => {
  it('a functional model nested in a model gives the flat model’s gradients, and its layers are found by name and by path', () => {
    const flat = makeNet('flat', [12, 12, 3], concatNet(false));
    const input = tf.input({ shape: [12, 12, 3] });
    const nested = tf.model({ inputs: input, outputs: concatNet(true)(flat.bank, input) });
    const x = images(flat, 2);
    tf.tidy(() => {
      assertClose(inputGradient(nested, x, [1, 3]), plainInputGradient(flat.model, x, [1, 3]), 'input gradient');
      const expected = plainLayerGradient(flat, 'stem_relu', x, [1, 3]);
      for (const name of ['stem_relu', 'stem/stem_relu']) {
        const actual = layerGradient(nested, x, name, [1, 3]);
        assertClose(actual.activations, expected.activations, `${name} activations`);
        assertClose(actual.gradients, expected.gradients, `${name} gradients`);
      }
    });
  });

  it('a model inside a Sequential', () => {
    const net = makeNet('inner', [16, 16, 3], smallCnn);
    const outer = tf.sequential({ layers: [net.model as unknown as tf.layers.Layer] });
    const x = images(net, 2);
    tf.tidy(() => assertClose(inputGradient(outer, x, [0, 1]), plainInputGradient(net.model, x, [0, 1]), 'input gradient'));
  });
});

describe('withConstantWeights', () => {
  it('gives the model’s outputs, and tf.grad through it computes no weight gradient', async () => {
    const net = makeNet('mnv2', [64, 64, 3], mobileNetV2(SMALL_V2_BLOCKS, 64, 10));
    const x = images(net, 2);
    const forward = withConstantWeights(net.model);
    tf.tidy(() => assertClose(forward(x)[0], net.model.predict(x) as tf.Tensor, 'outputs'));
    const names = await kernelNames(() => tf.grad((input: tf.Tensor) => score(forward(input)[0], [3, 4]))(x));
    assert.deepEqual(names.filter((name) => WEIGHT_GRADIENT.test(name)), []);
  });
});

describe('scores', () => {
  /** A head whose logits feed a softmax, and the same layers without it. */
  function softmaxHeads(softmaxAsLayer: boolean): { withSoftmax: tf.LayersModel; logits: tf.LayersModel } {
    const input = tf.input({ shape: [8, 8, 3] });
    const features = tf.layers.flatten().apply(conv(4, 3, { activation: 'relu' })('features').apply(input)) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 3, activation: softmaxAsLayer ? 'linear' : 'softmax' });
    const raw = dense.apply(features) as tf.SymbolicTensor;
    const output = softmaxAsLayer ? (tf.layers.softmax().apply(raw) as tf.SymbolicTensor) : raw;
    const withSoftmax = tf.model({ inputs: input, outputs: output });
    randomizeWeights(withSoftmax);
    const linear = tf.layers.dense({ units: 3 });
    const logits = tf.model({ inputs: input, outputs: linear.apply(features) as tf.SymbolicTensor });
    linear.setWeights(dense.getWeights());
    return { withSoftmax, logits };
  }

  for (const softmaxAsLayer of [true, false]) {
    it(`scores the logits before a final softmax (${softmaxAsLayer ? 'Softmax layer' : 'dense activation'}), or the probabilities when asked`, () => {
      const { withSoftmax, logits } = softmaxHeads(softmaxAsLayer);
      const x = tf.randomUniform([2, 8, 8, 3], -1, 1, 'float32', 3);
      tf.tidy(() => {
        assertClose(inputGradient(withSoftmax, x, [0, 2]), plainInputGradient(logits, x, [0, 2]), 'logit gradient');
        assertClose(inputGradient(withSoftmax, x, [0, 2], { beforeSoftmax: false }), plainInputGradient(withSoftmax, x, [0, 2]), 'probability gradient');
      });
    });
  }

  it('scores the output asked for in a model with several', () => {
    const net = makeNet('small', [16, 16, 3], smallCnn);
    const twoOutputs = tf.model({ inputs: net.model.inputs, outputs: [net.model.getLayer('gap').output as tf.SymbolicTensor, net.model.outputs[0]] });
    const x = images(net, 2);
    tf.tidy(() => {
      assertClose(inputGradient(twoOutputs, x, [3, 1], { output: 1 }), plainInputGradient(net.model, x, [3, 1]), 'logits output');
      const gap = tf.model({ inputs: net.model.inputs, outputs: net.model.getLayer('gap').output as tf.SymbolicTensor });
      assertClose(inputGradient(twoOutputs, x, [7, 15]), plainInputGradient(gap, x, [7, 15]), 'first output');
    });
  });

  it('rejects a wrong number of targets or a class the model does not have', () => {
    const net = makeNet('small', [16, 16, 3], smallCnn);
    const x = images(net, 2);
    assert.throws(() => inputGradient(net.model, x, [0]), (error: Error) => isUserError(error) && /1 target class\(es\) given for a batch of 2/.test(error.message));
    assert.throws(() => inputGradient(net.model, x, [0, 5]), (error: Error) => isUserError(error) && /Target class 5 does not exist: the model scores 5 classes/.test(error.message));
  });
});

describe('layers beyond the plain path', () => {
  it('a dilated conv, which plain tf.grad cannot differentiate, matches the same conv with its filter spread out', () => {
    const input = tf.input({ shape: [12, 12, 2] });
    const dilatedConv = conv(3, 3, { dilationRate: 2 })('dilated');
    const dilated = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2, name: 'd' }).apply(tf.layers.flatten().apply(dilatedConv.apply(input))) as tf.SymbolicTensor });
    randomizeWeights(dilated);
    const spreadConv = conv(3, 5)('spread');
    const spread = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(spreadConv.apply(input))) as tf.SymbolicTensor });
    const [kernel, bias] = dilatedConv.getWeights();
    const values = tf.buffer([5, 5, 2, 3]);
    const taps = kernel.bufferSync();
    for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) for (let c = 0; c < 2; c++) for (let f = 0; f < 3; f++) values.set(taps.get(i, j, c, f), 2 * i, 2 * j, c, f);
    spreadConv.setWeights([values.toTensor(), bias]);
    spread.layers[spread.layers.length - 1].setWeights(dilated.getLayer('d').getWeights());
    const x = tf.randomUniform([2, 12, 12, 2], -1, 1, 'float32', 9);
    assert.throws(() => plainInputGradient(dilated, x, [0, 1]), /dilation/);
    tf.tidy(() => assertClose(inputGradient(dilated, x, [0, 1]), plainInputGradient(spread, x, [0, 1]), 'input gradient'));
  });

  it('channels-first conv and batch norm on axis 1', () => {
    const input = tf.input({ shape: [3, 10, 10] });
    let h = tf.layers.conv2d({ filters: 4, kernelSize: 3, dataFormat: 'channelsFirst', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
    h = tf.layers.batchNormalization({ axis: 1, name: 'bn' }).apply(h) as tf.SymbolicTensor;
    h = tf.layers.conv2d({ filters: 2, kernelSize: 1, dataFormat: 'channelsFirst' }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3 }).apply(tf.layers.flatten().apply(h)) as tf.SymbolicTensor });
    randomizeWeights(model);
    const x = tf.randomUniform([2, 3, 10, 10], -1, 1, 'float32', 4);
    tf.tidy(() => assertClose(inputGradient(model, x, [2, 0]), plainInputGradient(model, x, [2, 0]), 'input gradient'));
  });
});

describe('dense layers', () => {
  it('compute no weight gradient: one BatchMatMul (dx) in the backward pass, where the plain path runs two (dx and dW)', async () => {
    const net = makeNet('small', [16, 16, 3], smallCnn);
    const x = images(net, 2);
    const count = (names: string[]) => names.filter((name) => name === 'BatchMatMul').length;
    assert.equal(count(await kernelNames(() => plainInputGradient(net.model, x, [0, 1]))), 2);
    assert.equal(count(await kernelNames(() => inputGradient(net.model, x, [0, 1]))), 1);
  });
});

describe('layer names', () => {
  it('the input layer’s name gives the images themselves and the input gradient', () => {
    const net = makeNet('small', [16, 16, 3], smallCnn);
    const x = images(net, 2);
    tf.tidy(() => {
      const { activations, gradients } = layerGradient(net.model, x, 'small_input', [4, 2]);
      assertClose(activations, x, 'activations');
      assertClose(gradients, plainInputGradient(net.model, x, [4, 2]), 'gradients');
    });
  });


  it('an unknown layer is a UserError naming the nearest layers', () => {
    const net = makeNet('mnv2', [64, 64, 3], mobileNetV2(SMALL_V2_BLOCKS, 64, 10));
    const x = images(net, 1);
    assert.throws(
      () => layerGradient(net.model, x, 'block_3_expand_rleu', [0]),
      (error: Error) => {
        assert.ok(isUserError(error), `expected a UserError, got ${error.stack}`);
        assert.match(error.message, /has no layer named "block_3_expand_rleu"; nearest: block_3_expand_relu, /);
        return true;
      },
    );
  });
});
