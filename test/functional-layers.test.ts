/**
 * Layers the torch original applies functionally (F.relu in a forward)
 * keep their plain gradients under guided backprop and DeepLift, as
 * Captum's module hooks never reach them: on both engines, and for the
 * built-in architectures that have such layers (every ReLU of torchvision's
 * GoogLeNet, DenseNet's ReLU after norm5).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { withSeededMathRandom } from '../src/core/random.ts';
import type { BackwardRule, ModelEngine } from '../src/core/tensor/engine.ts';
import { setEngineChoice } from '../src/core/tensor/engine-choice.ts';
import { createEngine } from '../src/core/tensor/engines.ts';
import { IMAGENET_NORMALISATION } from '../src/core/tensor/preprocess.ts';
import type { ModelCard, TfjsArchitecture } from '../src/core/tensor/tfjs-architecture.ts';
import builtins from '../src/plugins/index.ts';
import { useEngine, type EngineSetting } from './engines.ts';
import { randomizeWeights } from './nets.ts';

const ENGINES: EngineSetting[] = ['cpu', 'onnx:cpu'];

/** conv → ReLU r1 → max pool p1 → conv → ReLU r2 → global pooling → 3 logits. */
function small(): tf.LayersModel {
  const model = withSeededMathRandom(5, () => {
    const input = tf.input({ shape: [10, 10, 3] });
    let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c1' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: 'r1' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.maxPooling2d({ poolSize: 2, name: 'p1' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', name: 'c2' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: 'r2' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, name: 'logits' }).apply(x) as tf.SymbolicTensor, name: 'functional_small' });
  });
  randomizeWeights(model, 5);
  return model;
}

async function inputGradient(engine: ModelEngine, x: tf.Tensor4D, targets: number[], rule: BackwardRule): Promise<Float32Array> {
  const { input } = await engine.gradients(x, targets, { input: true, rule });
  const values = (await (input as tf.Tensor).data()) as Float32Array;
  (input as tf.Tensor).dispose();
  return values;
}

function maxDifference(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

describe('functional layers keep their plain gradients under guided backprop and DeepLift', () => {
  after(() => setEngineChoice({ engine: 'tfjs' }));

  for (const setting of ENGINES) {
    it(`${setting}: every layer functional gives the plain gradient; none functional does not; one functional as the other engine`, async () => {
      await useEngine(setting);
      const model = small();
      const x = tf.randomNormal([2, 10, 10, 3], 0, 1, 'float32', 11) as tf.Tensor4D;
      const references = tf.mul(tf.randomNormal([2, 10, 10, 3], 0, 1, 'float32', 12), 0.3);
      const both = tf.concat([x, references]) as tf.Tensor4D;
      const engines = {
        all: createEngine(model, { functionalLayers: ['r1', 'p1', 'r2'] }),
        none: createEngine(model),
        r1: createEngine(model, { functionalLayers: ['r1'] }),
      };
      try {
        const plain = await inputGradient(engines.none, x, [0, 2], 'plain');
        const plainBoth = await inputGradient(engines.none, both, [0, 2, 0, 2], 'plain');
        assert.ok(maxDifference(await inputGradient(engines.all, x, [0, 2], 'guided'), plain) < 1e-6, 'guided with every layer functional');
        assert.ok(maxDifference(await inputGradient(engines.all, both, [0, 2, 0, 2], 'deeplift'), plainBoth) < 1e-6, 'DeepLift with every layer functional');
        assert.ok(maxDifference(await inputGradient(engines.none, x, [0, 2], 'guided'), plain) > 1e-3, 'guided without functional layers differs from the plain gradient');
        assert.ok(maxDifference(await inputGradient(engines.none, both, [0, 2, 0, 2], 'deeplift'), plainBoth) > 1e-3, 'DeepLift without functional layers differs from the plain gradient');
        // r1 plain, r2 and the pool modified: the engines agree (the tfjs one against itself on cpu, ONNX Runtime against tfjs).
        const tfjsRules = async (rule: BackwardRule, input: tf.Tensor4D, targets: number[]) => {
          await useEngine('cpu');
          const reference = createEngine(model, { functionalLayers: ['r1'] });
          try {
            return await inputGradient(reference, input, targets, rule);
          } finally {
            reference.dispose();
            await useEngine(setting);
          }
        };
        const guided = await inputGradient(engines.r1, x, [0, 2], 'guided');
        assert.ok(maxDifference(guided, await tfjsRules('guided', x, [0, 2])) < 1e-5, 'guided with r1 functional, against tfjs');
        assert.ok(maxDifference(guided, await inputGradient(engines.none, x, [0, 2], 'guided')) > 1e-4, 'r1 functional changes guided');
        const deepLift = await inputGradient(engines.r1, both, [0, 2, 0, 2], 'deeplift');
        assert.ok(maxDifference(deepLift, await tfjsRules('deeplift', both, [0, 2, 0, 2])) < 1e-4, 'DeepLift with r1 functional, against tfjs');
      } finally {
        for (const engine of Object.values(engines)) engine.dispose();
        tf.dispose([x, references, both]);
        model.dispose();
      }
    });
  }

  it('GoogLeNet: all its ReLUs are BasicConv2d’s F.relu, so its guided backprop is the plain gradient (its max pools route to the first maximum either way)', async () => {
    await useEngine('onnx:cpu');
    const googlenet = builtins.find((p) => p.kind === 'architecture' && p.id === 'googlenet') as TfjsArchitecture;
    const params = googlenet.resolve({}, 'none');
    const model = withSeededMathRandom(3, () => googlenet.build(params, 4, [64, 64]));
    const card: ModelCard = {
      format: 1,
      architecture: { id: 'googlenet', version: googlenet.version, params },
      classes: ['a', 'b', 'c', 'd'],
      preprocessing: { size: [64, 64], normalisation: IMAGENET_NORMALISATION },
      target: 'inception5b',
      origin: {},
    } as ModelCard;
    const loaded = googlenet.loaded(model, card);
    const x = tf.randomNormal([2, 64, 64, 3], 0, 1, 'float32', 21) as tf.Tensor4D;
    try {
      const plain = await inputGradient(loaded.engine, x, [1, 3], 'plain');
      const scale = plain.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(maxDifference(await inputGradient(loaded.engine, x, [1, 3], 'guided'), plain) <= 1e-5 * scale, 'GoogLeNet guided = plain');
    } finally {
      loaded.engine.dispose();
      x.dispose();
      model.dispose();
    }
  });
});
