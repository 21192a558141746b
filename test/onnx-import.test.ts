/**
 * CNNs salgrid has no plugin for, as ONNX files from torch.onnx.export
 * (../shared/golden/onnx, copied into test/fixtures/golden/onnx:
 * MobileNetV3-small, EfficientNet-B0 small, ConvNeXt small; 64×64, 4
 * classes), through `salgrid predict` and `salgrid explain --model
 * model.onnx` on onnx:cpu: logits to 1e-4 of PyTorch's, Grad-CAM at the
 * torch module the golden names to 2e-3 of pytorch-grad-cam's maps, Captum's
 * Saliency and IntegratedGradients (Gauss–Legendre, 32 steps) raw to 1e-3 of
 * their largest value and normalised as Captum's visualisation does to 2e-3.
 * A graph with an op that has no backward rule still predicts, and a
 * gradient explainer on it fails in one sentence naming the op and node.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { readNpy, type NpyArray } from '../src/core/io/npy.ts';
import type { Params } from '../src/core/plugins/types.ts';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { exportLayersModel } from '../src/core/tensor/onnx/export.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { bareLoadedModel } from '../src/core/tensor/tensor-explainer.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { releaseOnnxSessions } from '../src/core/tensor/onnx-engine.ts';
import { attributionMaps, type AttributionExplainer } from '../src/plugins/explainers/attribution/attribution-base.ts';
import { onnxArchitecture } from '../src/plugins/architectures/onnx.ts';
import builtins from '../src/plugins/index.ts';
import { useEngine } from './engines.ts';
import { ROOT, cliAsync, largestError, mistake, ok, tempDir, type CliResult } from './helpers.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'onnx');
const NETS = ['mobilenet_v3', 'efficientnet', 'convnext'] as const;
const work = tempDir('salgrid-onnx-import-');
const config = (net: string) => JSON.parse(readFileSync(path.join(GOLDEN, net, 'config.json'), 'utf8')) as { targetLayer: string };
const golden = (net: string, file: string) => readNpy(path.join(GOLDEN, net, file));
const out = (name: string) => path.join(work, name);

async function salgrid(...args: string[]): Promise<CliResult> {
  return cliAsync(args, work).done;
}

function assertWithin(actual: ArrayLike<number>, expected: NpyArray, tolerance: number, what: string, relative = false): void {
  assert.equal(actual.length, expected.data.length, `${what}: sizes`);
  const { error, scale } = largestError(actual, expected.data as Float32Array);
  const bound = relative ? tolerance * scale : tolerance;
  assert.ok(error <= bound, `${what}: max error ${error} > ${bound}`);
}

const explainer = (id: string): AttributionExplainer => builtins.find((p) => p.kind === 'explainer' && p.id === id) as unknown as AttributionExplainer;

/** Captum's visualisation of attributions [n, h, w, c]: channel sum, absolute, scaled by the 98th percentile of the cumulative sum. */
function captumNormalised(attributions: NpyArray): Float32Array {
  const tensor = tf.tensor4d(attributions.data as Float32Array, attributions.shape as [number, number, number, number]);
  const { maps } = attributionMaps(tensor, { sign: 'absolute', normalize: 'captum', outlierPercent: 2 });
  const data = maps.dataSync() as Float32Array;
  tf.dispose([tensor, maps]);
  return data;
}

const IG: Params = { steps: 32, method: 'gausslegendre', baseline: 'zeros' };

describe('ONNX models from torch.onnx.export through salgrid predict and explain (onnx:cpu)', () => {
  const runs: Record<string, CliResult> = {};
  before(async () => {
    await useEngine('onnx:cpu');
    const jobs: [string, string[]][] = [];
    for (const net of NETS) {
      const model = ['--model', path.join(GOLDEN, net, 'model.onnx'), '--input', path.join(GOLDEN, net, 'inputs.npy'), '--backend', 'onnx:cpu', '--threads', '1'];
      jobs.push([`${net}/predict`, ['predict', ...model, '--logits', '--out', out(`${net}-logits.npy`)]]);
      jobs.push([`${net}/gradcam`, ['explain', ...model, '--method', 'gradcam', '--layer', config(net).targetLayer, '--out', out(`${net}-gradcam.npy`)]]);
    }
    // One attribution method each through the CLI (the in-process test covers every pair).
    const convnext = ['--model', path.join(GOLDEN, 'convnext', 'model.onnx'), '--input', path.join(GOLDEN, 'convnext', 'inputs.npy'), '--backend', 'onnx:cpu', '--threads', '1'];
    jobs.push(['convnext/ig', ['explain', ...convnext, '--method', 'integrated-gradients', '--param', 'steps=32', '--out', out('convnext-ig.npy')]]);
    const mobilenet = ['--model', path.join(GOLDEN, 'mobilenet_v3', 'model.onnx'), '--input', path.join(GOLDEN, 'mobilenet_v3', 'inputs.npy'), '--backend', 'onnx:cpu', '--threads', '1'];
    jobs.push(['mobilenet_v3/saliency', ['explain', ...mobilenet, '--method', 'saliency', '--out', out('mobilenet_v3-saliency.npy')]]);
    const results = await Promise.all(jobs.map(([, args]) => salgrid(...args)));
    jobs.forEach(([name], i) => (runs[name] = results[i]));
  });

  for (const net of NETS) {
    it(`${net}: logits to 1e-4 and Grad-CAM at ${config(net).targetLayer} to 2e-3`, async () => {
      ok(runs[`${net}/predict`]);
      assertWithin((await readNpy(out(`${net}-logits.npy`))).data as Float32Array, await golden(net, 'logits.npy'), 1e-4, `${net} logits`);
      const explained = ok(runs[`${net}/gradcam`]);
      assert.match(explained.stdout, new RegExp(`gradcam at ${config(net).targetLayer.replace('.', '\\.')} maps \\[3, 64, 64\\]`));
      assertWithin((await readNpy(out(`${net}-gradcam.npy`))).data as Float32Array, await golden(net, 'gradcam.npy'), 2e-3, `${net} Grad-CAM`);
    });
  }

  it('integrated gradients (ConvNeXt) and saliency (MobileNetV3) maps through the CLI, normalised as Captum visualises them, to 2e-3', async () => {
    ok(runs['convnext/ig']);
    ok(runs['mobilenet_v3/saliency']);
    assertWithin((await readNpy(out('convnext-ig.npy'))).data as Float32Array, { ...(await golden('convnext', 'integrated-gradients.npy')), data: captumNormalised(await golden('convnext', 'integrated-gradients.npy')), shape: [3, 64, 64] }, 2e-3, 'ConvNeXt IG maps');
    assertWithin((await readNpy(out('mobilenet_v3-saliency.npy'))).data as Float32Array, { ...(await golden('mobilenet_v3', 'saliency.npy')), data: captumNormalised(await golden('mobilenet_v3', 'saliency.npy')), shape: [3, 64, 64] }, 2e-3, 'MobileNetV3 saliency maps');
  });
});

describe('ONNX models from torch.onnx.export: raw attributions against Captum 0.8 (onnx:cpu, in process)', () => {
  before(() => useEngine('onnx:cpu'));
  after(() => releaseOnnxSessions());
  for (const net of NETS) {
    it(`${net}: Saliency and IntegratedGradients raw to 1e-3 of their largest value, maps normalised as Captum to 2e-3; default CAM layer ${config(net).targetLayer}`, async () => {
      const { model, card } = await onnxArchitecture.importOnnx(path.join(GOLDEN, net, 'model.onnx'), {}, {});
      assert.equal(card.target, config(net).targetLayer, 'the default CAM layer is the module before the global pooling');
      assert.deepEqual(card.preprocessing.size, [64, 64], 'the input size is read from the file');
      const loaded = onnxArchitecture.loaded(model, card);
      const inputs = await golden(net, 'inputs.npy');
      const input = tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
      try {
        for (const [id, params, file] of [['saliency', { abs: true }, 'saliency.npy'], ['integrated-gradients', IG, 'integrated-gradients.npy']] as const) {
          const result = await explainer(id).explainInput(loaded, input, params);
          const reference = await golden(net, file);
          const raw = new Float32Array(result.attributions!.flatMap((a) => [...a]));
          assertWithin(raw, reference, 1e-3, `${net} ${id} raw`, true);
          // The explainer's maps: absolute, normalised as Captum's visualisation normalises the reference.
          const maps = new Float32Array(result.maps.flatMap((m) => [...m]));
          assertWithin(maps, { ...reference, data: captumNormalised(reference), shape: [3, 64, 64] }, 2e-3, `${net} ${id} maps`);
        }
      } finally {
        input.dispose();
        loaded.engine.dispose();
      }
    });
  }
});

describe('an NHWC ONNX graph (layout: nhwc): the tiny-cnn fixture as salgrid exports it for its engine', () => {
  before(() => useEngine('onnx:cpu'));
  after(() => releaseOnnxSessions());
  it('logits, activations at a layer and input gradients equal the tfjs model on the onnx engine', async () => {
    const tiny = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
    const source = bareLoadedModel(await loadLayersModel(tiny));
    const file = out('tiny-nhwc.onnx');
    // The engine's own graph: NHWC input, layers' outputs named by their paths.
    writeFileSync(file, serializeGraph(exportLayersModel(source.model, { batch: 1, leaveOutSoftmax: true }).graph, { valueInfo: false }));
    const { model, card } = await onnxArchitecture.importOnnx(file, { layout: 'nhwc', normalize: 'unit', camLayer: 'relu3' }, {});
    const imported = onnxArchitecture.loaded(model, card);
    const inputs = await readNpy(path.join(tiny, 'inputs.npy'));
    const input = tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
    try {
      const [mine, theirs] = await Promise.all([imported, source].map((m) => m.engine.gradients(input, [0, 1, 2, 3], { layers: ['relu3'], input: true })));
      for (const [what, a, b] of [
        ['logits', await imported.engine.scores(input), await source.engine.scores(input)],
        ['relu3 activations', mine.layers[0].activations, theirs.layers[0].activations],
        ['relu3 gradients', mine.layers[0].gradients, theirs.layers[0].gradients],
        ['input gradients', mine.input!, theirs.input!],
      ] as [string, tf.Tensor, tf.Tensor][]) {
        assert.deepEqual(a.shape, b.shape, what);
        const { error, scale } = largestError(a.dataSync(), b.dataSync());
        assert.ok(error <= 1e-5 * scale, `${what}: ${error} > 1e-5 × ${scale}`);
      }
    } finally {
      input.dispose();
      imported.engine.dispose();
      source.engine.dispose();
      source.model.dispose();
    }
  });
});

describe('an ONNX graph with an op that has no backward rule', () => {
  const file = out('thresholded-relu.onnx');
  const inputs = out('thresholded-relu-inputs.npy');
  before(async () => {
    // conv → ThresholdedRelu → global pooling → flatten → dense: torch would name its nodes by module.
    const b = new GraphBuilder('thresholdedRelu');
    const x = b.addInput('input', [1, 3, 8, 8]);
    const w = b.float32('conv.weight', Float32Array.from({ length: 4 * 3 * 9 }, (_, i) => Math.sin(i)), [4, 3, 3, 3]);
    const conv = b.node('Conv', [x, w], [{ name: '/conv/Conv_output_0', shape: [1, 4, 8, 8] }], { pads: { ints: [1, 1, 1, 1] } }, '/conv/Conv')[0];
    const soft = b.node('ThresholdedRelu', [conv], [{ name: '/act/ThresholdedRelu_output_0', shape: [1, 4, 8, 8] }], { alpha: { float: 0.1 } }, '/act/ThresholdedRelu')[0];
    const pooled = b.node('GlobalAveragePool', [soft], [{ name: '/pool/GlobalAveragePool_output_0', shape: [1, 4, 1, 1] }], undefined, '/pool/GlobalAveragePool')[0];
    const flat = b.node('Flatten', [pooled], [{ name: '/Flatten_output_0', shape: [1, 4] }], undefined, '/Flatten')[0];
    const dense = b.float32('fc.weight', Float32Array.from({ length: 8 }, (_, i) => Math.cos(i)), [2, 4]);
    const logits = b.node('Gemm', [flat, dense], [{ name: 'logits', shape: [1, 2] }], { transB: { int: 1 } }, '/fc/Gemm')[0];
    b.addOutput(logits);
    writeFileSync(file, serializeGraph(b.build(), { valueInfo: false }));
    const { writeNpy } = await import('../src/core/io/npy.ts');
    await writeNpy(inputs, { dtype: 'float32', shape: [2, 8, 8, 3], data: Float32Array.from({ length: 2 * 8 * 8 * 3 }, (_, i) => Math.sin(i / 7)) });
  });

  it('predicts and runs forward-only explainers; a gradient through the op fails in one sentence naming the op and the node', async () => {
    const model = ['--model', file, '--input', inputs, '--backend', 'onnx:cpu', '--threads', '1', '--arch-param', 'normalize=unit'];
    const [predicted, occluded, gradcam] = await Promise.all([
      salgrid('predict', ...model, '--out', out('thresholded-relu-p.npy')),
      salgrid('explain', ...model, '--method', 'occlusion', '--param', 'window=[4,4]', '--param', 'stride=[4,4]', '--out', out('thresholded-relu-occlusion.npy')),
      salgrid('explain', ...model, '--method', 'gradcam', '--layer', 'conv', '--out', out('thresholded-relu-gradcam.npy')),
    ]);
    ok(predicted);
    assert.deepEqual((await readNpy(out('thresholded-relu-p.npy'))).shape, [2, 2]);
    ok(occluded);
    mistake(gradcam, /cannot differentiate ThresholdedRelu \(node \/act\/ThresholdedRelu\)/);
  });
});

describe('an ONNX graph exported for one batch size', () => {
  before(() => useEngine('onnx:cpu'));
  after(() => releaseOnnxSessions());
  it('runs at that batch size, and at another one says the export fixed it, in one sentence', async () => {
    // x.view(1, -1) as torch.onnx.export writes it without dynamic_axes: a Reshape to a constant [1, 4].
    const b = new GraphBuilder('fixed');
    const x = b.addInput('input', [1, 3, 8, 8]);
    const w = b.float32('conv.weight', Float32Array.from({ length: 4 * 3 }, (_, i) => Math.sin(i)), [4, 3, 1, 1]);
    const conv = b.node('Conv', [x, w], [{ name: '/conv/Conv_output_0', shape: [1, 4, 8, 8] }], undefined, '/conv/Conv')[0];
    const pooled = b.node('GlobalAveragePool', [conv], [{ name: '/pool/GlobalAveragePool_output_0', shape: [1, 4, 1, 1] }], undefined, '/pool/GlobalAveragePool')[0];
    const flat = b.node('Reshape', [pooled, b.int64('shape', [1, 4])], [{ name: '/Reshape_output_0', shape: [1, 4] }], undefined, '/Reshape')[0];
    const dense = b.float32('fc.weight', Float32Array.from({ length: 8 }, (_, i) => Math.cos(i)), [2, 4]);
    b.addOutput(b.node('Gemm', [flat, dense], [{ name: 'logits', shape: [1, 2] }], { transB: { int: 1 } }, '/fc/Gemm')[0]);
    const file = out('fixed-batch.onnx');
    writeFileSync(file, serializeGraph(b.build(), { valueInfo: false }));
    const { model, card } = await onnxArchitecture.importOnnx(file, { normalize: 'unit' }, {});
    const loaded = onnxArchitecture.loaded(model, card);
    const one = tf.zeros([1, 8, 8, 3]) as tf.Tensor4D;
    const two = tf.zeros([2, 8, 8, 3]) as tf.Tensor4D;
    try {
      const scores = await loaded.engine.scores(one);
      assert.deepEqual(scores.shape, [1, 2]);
      scores.dispose();
      await assert.rejects(loaded.engine.scores(two), (error: Error) => {
        assert.equal(error.name, 'UserError');
        assert.match(error.message, /node \/Reshape \(Reshape\): its target shape \[1, 4\] does not hold its input \[2, 4, 1, 1\]: it fixes the batch size.*dynamic_axes/);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    } finally {
      tf.dispose([one, two]);
      loaded.engine.dispose();
    }
  });
});
