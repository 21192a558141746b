/**
 * The onnx engine on ONNX Runtime's WebGPU provider (onnx:webgpu); in CI on
 * lavapipe, Mesa's software Vulkan (scripts/install-lavapipe.sh).
 *
 * - Convolutions its NHWC kernels miscompute (input channels 6, 9, 15…;
 *   transposed to one channel from 5, 7…) get their input channels padded
 *   to a multiple of 4 (webgpu-graph.ts), computing the same on onnx:cpu and
 *   now the same on onnx:webgpu; ResNet's layers that its NCHW kernels
 *   miscompute come out right in NHWC.
 * - Gradient graphs built for WebGPU hold none of the ops its provider lacks
 *   (ONNX Runtime 1.23.2 runs Sum, Max, Min, And and Or on the CPU, with a
 *   copy down and up around each): MobileNetV2's ReLU6 masks, GoogLeNet's
 *   four-way gradient sums, DeepLift's max-pool rule; on onnx:cpu they
 *   compute what the CPU formulation does, and on onnx:webgpu the same.
 * - Max pooling's backward as the gradient builder writes it for WebGPU
 *   (max-pool-routing.ts: the provider computes no MaxPool Indices) against
 *   the Indices + ScatterElements formulation it keeps for cpu and cuda:
 *   ties, pads, ceil mode, dilation, overlapping windows, DeepLift's rule.
 *   Both graphs run on onnx:cpu everywhere; the WebGPU one also on onnx:webgpu.
 * - Every explainer once on the golden tiny-cnn: against the reference
 *   library's output where ../shared/golden has a case (pytorch-grad-cam,
 *   Captum; the golden README's tolerances: raw maps and attributions to
 *   1e-3 × the largest |expected|, final maps to 2e-3), otherwise
 *   (gradient-shap, smoothgrad, vargrad: no golden) against onnx:cpu with the
 *   same seed, to 1e-3 × the largest |onnx:cpu|. The slow many-pass methods
 *   explain fewer images (same code, same tolerance).
 * - confidence-change's golden cases (pytorch-grad-cam), to 1e-4 as on the
 *   other engines.
 *
 * The onnx:webgpu part is skipped, saying why, where ONNX Runtime finds no
 * WebGPU adapter — except under SALGRID_REQUIRE_WEBGPU=1 (CI), where a
 * missing adapter fails it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadLayersModel } from '../src/core/io/model-io.ts';
import { readNpy } from '../src/core/io/npy.ts';
import type { LoadedModel, Params } from '../src/core/plugins/types.ts';
import { seededRandom, withSeededMathRandom } from '../src/core/random.ts';
import { setEngineChoice } from '../src/core/tensor/engine-choice.ts';
import { arrayInputs, scoreWithModel, type MapArray, type MetricValues } from '../src/core/tensor/model-metric.ts';
import { releaseOnnxSessions } from '../src/core/tensor/onnx-engine.ts';
import { tryOnnxDevice } from '../src/core/tensor/onnx-devices.ts';
import { exportLayersModel } from '../src/core/tensor/onnx/export.ts';
import { buildGradientGraph, type GradientRule } from '../src/core/tensor/onnx/gradient.ts';
import type { Attribute, Graph } from '../src/core/tensor/onnx/graph.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { forWebGpu } from '../src/core/tensor/onnx/webgpu-graph.ts';
import { OnnxSession, type HostTensor, type OnnxDevice } from '../src/core/tensor/onnx/session.ts';
import { bareLoadedModel } from '../src/core/tensor/tensor-explainer.ts';
import { buildGoogLeNet } from '../src/plugins/architectures/googlenet-model.ts';
import { buildMobileNetV2 } from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { buildResNet, resNetPreset } from '../src/plugins/architectures/resnet-model.ts';
import builtins from '../src/plugins/index.ts';
import { confidenceChange, type ConfidenceChangeParams } from '../src/plugins/metrics/confidence-change.ts';
import { useEngine } from './engines.ts';
import { ROOT, largestError } from './helpers.ts';

const TINY = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const REQUIRED = process.env.SALGRID_REQUIRE_WEBGPU === '1';
const webgpu = await tryOnnxDevice('webgpu', { allowSoftwareAdapter: true, explicit: false });
const SKIP = webgpu.ok || REQUIRED ? false : `no WebGPU adapter for ONNX Runtime here (${webgpu.reason}); scripts/install-lavapipe.sh installs a software one`;

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

function assertWithin(actual: ArrayLike<number>, expected: ArrayLike<number>, relative: number, what: string): void {
  const { error, scale } = largestError(actual, expected);
  assert.ok(scale > 0, `${what}: the reference is all zeros, which compares nothing`);
  assert.ok(error <= relative * scale, `${what}: max |actual − expected| = ${error} > ${relative} × ${scale}`);
}

// ------------------------------------------------------------------ max pooling's backward without Indices

interface PoolCase {
  readonly name: string;
  /** NCHW. */
  readonly shape: [number, number, number, number];
  readonly kernel: [number, number];
  readonly strides: [number, number];
  /** [top, left, bottom, right]. */
  readonly pads?: [number, number, number, number];
  readonly dilations?: [number, number];
  readonly ceil?: boolean;
  /** Values of x: 'tied' (three levels: many windows with several maxima) or 'negative' (all below the zero a pad would hold). */
  readonly values: 'tied' | 'negative';
  readonly rule?: GradientRule;
}

const POOL_CASES: readonly PoolCase[] = [
  { name: '2×2 stride 2, an odd width leaving a column unread', shape: [2, 3, 6, 7], kernel: [2, 2], strides: [2, 2], values: 'tied' },
  { name: '3×3 stride 2 pads 1 (overlapping windows)', shape: [2, 3, 9, 8], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], values: 'tied' },
  { name: '3×3 stride 2 ceil mode (windows overhang the end)', shape: [2, 2, 10, 9], kernel: [3, 3], strides: [2, 2], ceil: true, values: 'tied' },
  { name: '3×3 stride 1 pads 0,1,1,0', shape: [1, 2, 6, 6], kernel: [3, 3], strides: [1, 1], pads: [0, 1, 1, 0], values: 'tied' },
  { name: '3×3 stride 2 pads 1 on negative values (a pad never wins)', shape: [1, 5, 7, 7], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], values: 'negative' },
  { name: '2×2 dilation 2 stride 1', shape: [1, 3, 7, 6], kernel: [2, 2], strides: [1, 1], dilations: [2, 2], values: 'tied' },
  { name: 'DeepLift’s rule through 3×3 stride 2 pads 1', shape: [4, 3, 9, 9], kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], values: 'tied', rule: 'deeplift' },
];

function outSize(size: number, kernel: number, stride: number, dilation: number, before: number, after: number, ceil: boolean): number {
  const span = size + before + after - ((kernel - 1) * dilation + 1);
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  // A last window starting in the end padding is dropped (PyTorch's rule, which ONNX adopted).
  if (ceil && (out - 1) * stride >= size + before) out -= 1;
  return out;
}

/** x → (Relu for DeepLift, a rule node before the pool) → MaxPool → Flatten as the score; the graph asking for ∂score/∂x. */
function poolGradientGraph(c: PoolCase, device: OnnxDevice): { graph: Graph; input: string; targets: string; output: string; targetShape: number[] } {
  const [n, ch, h, w] = c.shape;
  const [top, left, bottom, right] = c.pads ?? [0, 0, 0, 0];
  const [dh, dw] = c.dilations ?? [1, 1];
  const out = [n, ch, outSize(h, c.kernel[0], c.strides[0], dh, top, bottom, c.ceil ?? false), outSize(w, c.kernel[1], c.strides[1], dw, left, right, c.ceil ?? false)];
  const b = new GraphBuilder(c.name);
  const x = b.addInput('x', c.shape);
  const pooled = c.rule === 'deeplift' ? b.op('Relu', [x], 'r', c.shape) : x;
  const attributes: Record<string, Attribute> = {
    kernel_shape: { ints: c.kernel },
    strides: { ints: c.strides },
    pads: { ints: c.pads ?? [0, 0, 0, 0] },
    dilations: { ints: c.dilations ?? [1, 1] },
    ceil_mode: { int: c.ceil ? 1 : 0 },
  };
  const y = b.op('MaxPool', [pooled], 'y', out, attributes);
  const score = b.op('Flatten', [y], 'score', [n, size(out.slice(1))], { axis: { int: 1 } });
  b.addOutput(score);
  const built = buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: c.rule ?? 'plain', device });
  return { graph: built.graph, input: x, targets: built.targets, output: built.input as string, targetShape: [n, size(out.slice(1))] };
}

function poolFeeds(c: PoolCase, graph: ReturnType<typeof poolGradientGraph>): Record<string, HostTensor> {
  const random = seededRandom(size(c.shape));
  const x = Float32Array.from({ length: size(c.shape) }, () => (c.values === 'tied' ? Math.floor(random() * 3) - 1 : -1 - random()));
  // A random mask (not one-hot): the gradient reaching each window differs.
  const mask = Float32Array.from({ length: size(graph.targetShape) }, () => random() * 2 - 1);
  return { [graph.input]: { data: x, shape: c.shape }, [graph.targets]: { data: mask, shape: graph.targetShape } };
}

async function runGraph(graph: Graph, feeds: Record<string, HostTensor>, output: string, device: OnnxDevice): Promise<Float32Array> {
  // As the engine makes its sessions: on WebGPU with forWebGpu's padding.
  const session = await OnnxSession.fromGraph(graph, { device, threads: 1 });
  try {
    // Every output is fetched (onnxruntime-node 1.23.2 mislabels partial fetches); these graphs have one.
    const [result] = await session.run(feeds, session.outputNames);
    assert.deepEqual(session.outputNames, [output]);
    return result.data;
  } finally {
    await session.release();
  }
}

/** What the Indices + ScatterElements graph (the cpu formulation) computes on onnx:cpu. */
async function indicesReference(c: PoolCase): Promise<{ feeds: Record<string, HostTensor>; expected: Float32Array }> {
  const indices = poolGradientGraph(c, 'cpu');
  const maxPool = indices.graph.nodes.find((node) => node.op === 'MaxPool');
  assert.equal(maxPool?.outputs.length, 2, 'the cpu formulation reads MaxPool’s Indices');
  assert.ok(indices.graph.nodes.some((node) => node.op === 'ScatterElements'));
  assert.deepEqual(indices.graph.inputs.map((info) => info.name), ['x', 'targets']);
  const feeds = poolFeeds(c, indices);
  return { feeds, expected: await runGraph(indices.graph, feeds, indices.output, 'cpu') };
}

/** The WebGPU formulation (same input names as the cpu one): no Indices, none of the ops ONNX Runtime 1.23.2's WebGPU provider lacks or miscomputes at small shapes. */
function webgpuGraph(c: PoolCase): ReturnType<typeof poolGradientGraph> {
  const graph = poolGradientGraph(c, 'webgpu');
  assert.deepEqual(graph.graph.inputs.map((info) => info.name), ['x', 'targets']);
  for (const node of graph.graph.nodes) {
    if (node.op === 'MaxPool') assert.equal(node.outputs.length, 1, `${c.name}: MaxPool with an Indices output`);
    assert.ok(!['ScatterElements', 'MatMul', 'ConvTranspose'].includes(node.op), `${c.name}: a ${node.op} node`);
  }
  return graph;
}

describe('max pooling’s backward without Indices (the WebGPU formulation) = Indices + ScatterElements, on onnx:cpu', () => {
  for (const c of POOL_CASES) {
    it(c.name, async () => {
      const { feeds, expected } = await indicesReference(c);
      const compared = webgpuGraph(c);
      const actual = await runGraph(compared.graph, feeds, compared.output, 'cpu');
      // Where windows overlap, the sums run in another order.
      assertWithin(actual, expected, 1e-6, c.name);
    });
  }
});

// ------------------------------------------------------------------ convolutions the WebGPU provider miscomputes

interface ConvCase {
  readonly name: string;
  readonly op: 'Conv' | 'ConvTranspose';
  /** NCHW input. */
  readonly input: [number, number, number, number];
  readonly outChannels: number;
  readonly kernel: number;
  readonly stride: number;
  readonly pad: number;
  /** The weights as a graph input (a training graph's) rather than a constant. */
  readonly weightsAsInput?: boolean;
  /** Whether forWebGpu pads this one. */
  readonly padded: boolean;
}

const CONV_CASES: readonly ConvCase[] = [
  { name: '3×3 from 6 channels (constant weights)', op: 'Conv', input: [2, 6, 8, 8], outChannels: 8, kernel: 3, stride: 1, pad: 1, padded: true },
  { name: '3×3 stride 2 from 9 channels (weights a graph input, as a weight gradient’s dy)', op: 'Conv', input: [2, 9, 9, 9], outChannels: 4, kernel: 3, stride: 2, pad: 1, weightsAsInput: true, padded: true },
  { name: 'transposed 3×3 from 5 channels to 1', op: 'ConvTranspose', input: [2, 5, 8, 8], outChannels: 1, kernel: 3, stride: 1, pad: 1, padded: true },
  { name: '1×1 from 6 channels (right as it is)', op: 'Conv', input: [2, 6, 8, 8], outChannels: 8, kernel: 1, stride: 1, pad: 0, padded: false },
  { name: 'ResNet’s 3×3 stride 2 at 128→256 on 28² (wrong in NCHW)', op: 'Conv', input: [2, 128, 28, 28], outChannels: 256, kernel: 3, stride: 2, pad: 1, padded: false },
  { name: 'ResNet’s 3×3 at 512→512 on 7² (wrong in NCHW)', op: 'Conv', input: [1, 512, 7, 7], outChannels: 512, kernel: 3, stride: 1, pad: 1, padded: false },
];

function convGraph(c: ConvCase): { graph: Graph; feeds: Record<string, HostTensor>; output: string } {
  const b = new GraphBuilder(c.name);
  const x = b.addInput('x', c.input);
  const channels = c.input[1];
  const weightShape = c.op === 'Conv' ? [c.outChannels, channels, c.kernel, c.kernel] : [channels, c.outChannels, c.kernel, c.kernel];
  const random = seededRandom(size(c.input) + c.outChannels);
  const weightData = Float32Array.from({ length: size(weightShape) }, () => random() - 0.5);
  const w = c.weightsAsInput ? b.addInput('w', weightShape) : b.float32('w', weightData, weightShape);
  const out = c.input.slice(2).map((n) => (c.op === 'Conv' ? Math.floor((n + 2 * c.pad - c.kernel) / c.stride) + 1 : (n - 1) * c.stride - 2 * c.pad + c.kernel));
  const y = b.op(c.op, [x, w], 'y', [c.input[0], c.outChannels, ...out], { kernel_shape: { ints: [c.kernel, c.kernel] }, strides: { ints: [c.stride, c.stride] }, pads: { ints: [c.pad, c.pad, c.pad, c.pad] } });
  b.addOutput(y);
  const feeds: Record<string, HostTensor> = { x: { data: Float32Array.from({ length: size(c.input) }, () => random() * 2 - 1), shape: c.input } };
  if (c.weightsAsInput) feeds.w = { data: weightData, shape: weightShape };
  return { graph: b.build(), feeds, output: y };
}

describe('forWebGpu pads the input channels of the convolutions the WebGPU provider miscomputes in NHWC, and computes the same (on onnx:cpu)', () => {
  for (const c of CONV_CASES) {
    it(c.name, async () => {
      const { graph, feeds, output } = convGraph(c);
      const rewritten = forWebGpu(graph);
      if (!c.padded) return assert.equal(rewritten, graph, 'left as it is');
      const conv = rewritten.nodes.find((node) => node.op === c.op)!;
      const channels = rewritten.values.get(conv.inputs[0])?.shape[1] ?? 0;
      assert.ok(channels > c.input[1] && channels % 4 === 0, `input channels padded to a multiple of 4, not ${channels}`);
      assert.deepEqual(rewritten.inputs.map((info) => info.name), graph.inputs.map((info) => info.name));
      assertWithin(await runGraph(rewritten, feeds, output, 'cpu'), await runGraph(graph, feeds, output, 'cpu'), 1e-6, c.name);
    });
  }
});

// ------------------------------------------------------------------ the study nets' gradient graphs for WebGPU

/** Ops ONNX Runtime 1.23.2's WebGPU provider does not have (checked in its verbose node placements on lavapipe). */
const CPU_ONLY_ON_WEBGPU = ['Sum', 'Max', 'Min', 'And', 'Or'];

interface NetCase {
  readonly name: string;
  readonly build: () => tf.LayersModel;
  readonly rule: GradientRule;
  /** The op of the CPU formulation this case is about. */
  readonly uses: string;
  /**
   * Whether onnx:webgpu's gradients are compared with onnx:cpu's too. Not for
   * GoogLeNet: among its 57 ReLUs over 22 layers some pre-activation lies within rounding
   * of its kink, lavapipe rounds it to either side from run to run, and a
   * few percent of the input gradient moves with it (seen in CI); its Sums
   * are compared on WebGPU in a four-branch block instead.
   */
  readonly onWebGpu: boolean;
}

/** GoogLeNet's fan-out in small: one activation read by four convolution branches, concatenated (its gradient sums four parts). */
function fourBranchBlock(): tf.LayersModel {
  const input = tf.input({ shape: [16, 16, 3] });
  const stem = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' }).apply(input) as tf.SymbolicTensor;
  const branches = [1, 3, 5, 1].map((kernelSize) => tf.layers.conv2d({ filters: 4, kernelSize, padding: 'same', activation: 'relu' }).apply(stem) as tf.SymbolicTensor);
  const joined = tf.layers.concatenate({ axis: -1 }).apply(branches) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(joined) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 4 }).apply(pooled) as tf.SymbolicTensor });
}

const NET_CASES: readonly NetCase[] = [
  { name: 'MobileNetV2 0.35 (ReLU6 masks)', build: () => seeded(() => buildMobileNetV2({ widthMult: 0.35, numClasses: 4, inputSize: 32 })), rule: 'plain', uses: 'And', onWebGpu: true },
  { name: 'GoogLeNet (gradients of four branches summed)', build: () => heInitialized(seeded(() => buildGoogLeNet({ numClasses: 4, inputSize: 32 }))), rule: 'plain', uses: 'Sum', onWebGpu: false },
  { name: 'a four-branch block (GoogLeNet’s gradient sums, shallow)', build: () => seeded(fourBranchBlock), rule: 'plain', uses: 'Sum', onWebGpu: true },
  { name: 'ResNet18 with DeepLift (the max pool’s cross maximum)', build: () => seeded(() => buildResNet(resNetPreset(18, { numClasses: 4 }))), rule: 'deeplift', uses: 'Max', onWebGpu: true },
];

/**
 * The model with seeded initial weights: deep networks at random weights
 * hold pre-activations within rounding of a ReLU's kink, which the two
 * providers may round to opposite sides (onnx-training.test.ts says more);
 * fixed weights make the comparison the same in every run.
 */
const seeded = (build: () => tf.LayersModel) => withSeededMathRandom(2026, build);

/**
 * The model with its kernels drawn at He's scale, √(2 / fan-in): torchvision's
 * GoogLeNet initialisation (σ 0.01) leaves gradients near 1e-13 at the input,
 * where float32 rounding alone differs between providers.
 */
function heInitialized(model: tf.LayersModel): tf.LayersModel {
  model.trainableWeights.forEach((weight, i) => {
    const shape = weight.shape as number[];
    if (shape.length !== 4) return;
    const values = tf.randomNormal(shape, 0, Math.sqrt(2 / (shape[0] * shape[1] * shape[2])), 'float32', i);
    weight.write(values);
    values.dispose();
  });
  return model;
}

/** The net's input-gradient graph for `device`, with its feeds (two images: DeepLift's input and reference). */
function netGradientGraph(model: tf.LayersModel, rule: GradientRule, device: OnnxDevice): { graph: Graph; feeds: Record<string, HostTensor> } {
  const exported = exportLayersModel(model, { batch: 2, leaveOutSoftmax: true });
  const built = buildGradientGraph(exported.graph, { input: exported.input, score: exported.output, layers: [], inputGradient: true, rule, layouts: exported.layouts, device });
  const inputShape = [2, ...(model.inputs[0].shape.slice(1) as number[])];
  const random = seededRandom(7);
  return {
    graph: built.graph,
    feeds: {
      [exported.input]: { data: Float32Array.from({ length: size(inputShape) }, () => random() * 2 - 1), shape: inputShape },
      [built.targets]: { data: Float32Array.of(0, 1, 0, 0, 0, 0, 1, 0), shape: [2, 4] },
    },
  };
}

describe('the study nets’ gradient graphs for WebGPU hold none of the ops its provider lacks, and compute the CPU formulation’s gradients (on onnx:cpu)', () => {
  before(() => useEngine('onnx:cpu'));
  after(() => setEngineChoice({ engine: 'tfjs' }));
  for (const c of NET_CASES) {
    it(c.name, async () => {
      const model = c.build();
      try {
        const cpu = netGradientGraph(model, c.rule, 'cpu');
        const gpu = netGradientGraph(model, c.rule, 'webgpu');
        assert.ok(cpu.graph.nodes.some((node) => node.op === c.uses), `the CPU formulation uses ${c.uses} here`);
        assert.deepEqual(gpu.graph.nodes.filter((node) => CPU_ONLY_ON_WEBGPU.includes(node.op)).map((node) => `${node.op} ${node.name}`), []);
        const [expected, actual] = [await runGraph(cpu.graph, cpu.feeds, cpu.graph.outputs[0].name, 'cpu'), await runGraph(gpu.graph, cpu.feeds, gpu.graph.outputs[0].name, 'cpu')];
        // DeepLift divides by input differences, which magnify the max pool's sums taken in another order.
        assertWithin(actual, expected, c.rule === 'deeplift' ? 1e-4 : 1e-6, c.name);
      } finally {
        model.dispose();
      }
    });
  }
});

// ------------------------------------------------------------------ onnx:webgpu

interface GoldenCase {
  library: string;
  method?: string;
  metric?: string;
  score?: 'logit' | 'softmax';
  file: string;
  shape: number[];
}
const golden = JSON.parse(readFileSync(path.join(TINY, 'cases.json'), 'utf8')) as { target_layer: string; predicted: number[]; cases: GoldenCase[] };
const caseFiles = new Set(golden.cases.map((c) => c.file));

const explainer = (id: string) => {
  const plugin = builtins.find((p) => p.kind === 'explainer' && p.id === id);
  assert.ok(plugin, `explainer ${id} is not registered`);
  return plugin as unknown as {
    explainInput(model: LoadedModel, input: tf.Tensor4D, params: Params): Promise<{ maps: Float32Array[]; attributions?: Float32Array[]; targets: number[] }>;
    rawMaps?(model: LoadedModel, input: tf.Tensor4D, targets: number[], params: Params): Promise<tf.Tensor3D[]>;
  };
};

const CAMS = ['gradcam', 'hirescam', 'gradcam++', 'xgradcam', 'layercam', 'gradcam-elementwise', 'eigencam', 'eigengradcam', 'scorecam', 'ablationcam', 'fullgrad'];
/** Captum's goldens: the explainer's params in salgrid's terms, and how many of the 4 images to explain. */
const CAPTUM: Record<string, { params: Params; images: number }> = {
  saliency: { params: { abs: true }, images: 4 },
  'input-x-gradient': { params: {}, images: 4 },
  'integrated-gradients': { params: { steps: 50, method: 'gausslegendre', baseline: 'zeros', internalBatchSize: 50 }, images: 1 },
  occlusion: { params: { window: [8, 8], stride: [4, 4], baseline: 0, internalBatchSize: 75 }, images: 1 },
  deeplift: { params: { baseline: 'zeros' }, images: 4 },
  'guided-backprop': { params: {}, images: 4 },
};
/** No golden: compared with onnx:cpu, same seed. */
const AGAINST_CPU: Record<string, Params> = {
  'gradient-shap': { samples: 4, stdevs: 0.1, baselines: ['zeros', 'uniform'], seed: 3 },
  smoothgrad: { method: 'saliency', samples: 4, noiseStd: 0.2, seed: 3 },
  vargrad: { method: 'input-x-gradient', samples: 4, noiseStd: 0.2, seed: 3 },
};
const EXPLAINERS = [...CAMS, ...Object.keys(CAPTUM), ...Object.keys(AGAINST_CPU)];

async function goldenArray(file: string): Promise<Float32Array> {
  const array = await readNpy(path.join(TINY, file));
  assert.equal(array.dtype, 'float32');
  return array.data as Float32Array;
}

const concat = (arrays: readonly Float32Array[]) => Float32Array.from(arrays.flatMap((a) => Array.from(a)));

/** The first `images` images' share of a golden array of 4. */
const firstImages = (data: Float32Array, images: number) => data.subarray(0, (data.length / 4) * images);

/** An eigen case's map matches the golden of either sign, per image (the reference keeps LAPACK's sign). */
async function assertCamMatches(actual: Float32Array, file: string, tolerance: (expected: Float32Array) => number, images: number): Promise<void> {
  const expected = firstImages(await goldenArray(file), images);
  const flippedFile = file.replace(/-(predicted)(-raw)?\.npy$/, '-$1-flipped$2.npy');
  const flipped = caseFiles.has(flippedFile) ? firstImages(await goldenArray(flippedFile), images) : undefined;
  const per = expected.length / images;
  for (let i = 0; i < images; i++) {
    const part = (data: Float32Array) => data.subarray(i * per, (i + 1) * per);
    const { error } = largestError(part(actual), part(expected));
    const other = flipped ? largestError(part(actual), part(flipped)).error : Infinity;
    assert.ok(error <= tolerance(expected) || other <= tolerance(flipped as Float32Array), `${file}, image ${i}: max error ${error}${flipped ? ` (${other} against the flipped sign)` : ''} > ${tolerance(expected)}`);
  }
}

const maxAbs = (data: Float32Array) => data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('onnx:webgpu (lavapipe in CI): every explainer once, and confidence-change, on the golden tiny-cnn', { skip: SKIP }, () => {
  let gpu: LoadedModel;
  let cpu: LoadedModel;
  let input: tf.Tensor4D;
  const slice = (images: number) => tf.slice(input, [0, 0, 0, 0], [images, -1, -1, -1]);

  before(async () => {
    assert.ok(webgpu.ok, `onnx:webgpu does not start here (SALGRID_REQUIRE_WEBGPU=1 asks for it): ${webgpu.ok ? '' : webgpu.reason}`);
    await useEngine('onnx:cpu');
    const inputs = await readNpy(path.join(TINY, 'inputs.npy'));
    input = tf.tensor4d(inputs.data as Float32Array, inputs.shape as [number, number, number, number]);
    cpu = bareLoadedModel(await loadLayersModel(TINY));
    await useEngine('onnx:webgpu');
    gpu = bareLoadedModel(await loadLayersModel(TINY));
  });
  after(async () => {
    for (const model of [gpu, cpu]) {
      model?.engine.dispose();
      model?.model?.dispose();
    }
    input?.dispose();
    await releaseOnnxSessions();
    setEngineChoice({ engine: 'tfjs' });
  });

  it('runs on the WebGPU provider, and covers every registered explainer', () => {
    assert.equal(gpu.engine.info.device, 'webgpu');
    assert.deepEqual(EXPLAINERS.slice().sort(), builtins.filter((p) => p.kind === 'explainer').map((p) => p.id).sort(), 'every registered explainer is covered');
  });

  describe('max pooling’s backward without Indices = Indices + ScatterElements on onnx:cpu', () => {
    for (const c of POOL_CASES) {
      it(c.name, async () => {
        const { feeds, expected } = await indicesReference(c);
        const compared = webgpuGraph(c);
        const actual = await runGraph(compared.graph, feeds, compared.output, 'webgpu');
        assertWithin(actual, expected, 1e-5, c.name);
      });
    }
  });

  it('ReduceMax, ReduceMin, GlobalMaxPool and Max’s backward (ArgMax and int64 Equal; ties split) = onnx:cpu’s, ties included', async () => {
    const shape = [2, 4, 3, 3];
    const cases: ReadonlyArray<{ name: string; out: number[]; op: (b: GraphBuilder, x: string) => string }> = [
      { name: 'ReduceMax axis 1 keepdims', out: [2, 1, 3, 3], op: (b, x) => b.op('ReduceMax', [x], 'y', [2, 1, 3, 3], { axes: { ints: [1] }, keepdims: { int: 1 } }) },
      { name: 'ReduceMin axes 2, -1', out: [2, 4], op: (b, x) => b.op('ReduceMin', [x], 'y', [2, 4], { axes: { ints: [2, -1] }, keepdims: { int: 0 } }) },
      { name: 'ReduceMax split axes 1, 3', out: [2, 3], op: (b, x) => b.op('ReduceMax', [x], 'y', [2, 3], { axes: { ints: [1, 3] }, keepdims: { int: 0 } }) },
      { name: 'ReduceMin over all', out: [1, 1, 1, 1], op: (b, x) => b.op('ReduceMin', [x], 'y', [1, 1, 1, 1], { keepdims: { int: 1 } }) },
      { name: 'GlobalMaxPool', out: [2, 4, 1, 1], op: (b, x) => b.op('GlobalMaxPool', [x], 'y', [2, 4, 1, 1]) },
      { name: 'Max with 0 (ties at 0 split)', out: shape, op: (b, x) => b.op('Max', [x, b.float32('zero', [0], [1])], 'y', shape) },
    ];
    for (const c of cases) {
      const b = new GraphBuilder(c.name);
      const x = b.addInput('x', shape);
      const rows = c.out[0];
      const score = b.op('Flatten', [c.op(b, x)], 'score', [rows, size(c.out) / rows], { axis: { int: 1 } });
      b.addOutput(score);
      const random = seededRandom(size(shape));
      const values = Float32Array.from({ length: size(shape) }, () => Math.floor(random() * 3) - 1);
      const mask = Float32Array.from({ length: size(c.out) }, () => random() * 2 - 1);
      const [onCpu, onGpu] = await Promise.all(
        (['cpu', 'webgpu'] as const).map((device) => {
          const built = buildGradientGraph(b.build(), { input: x, score, layers: [], inputGradient: true, rule: 'plain', device });
          return runGraph(built.graph, { x: { data: values, shape }, [built.targets]: { data: mask, shape: [rows, size(c.out) / rows] } }, built.input as string, device);
        }),
      );
      assertWithin(onGpu, onCpu, 1e-6, c.name);
    }
  });

  for (const c of CONV_CASES) {
    it(`${c.name}: a session of it on onnx:webgpu (forWebGpu's padding) = onnx:cpu, to 1e-5 × max`, async () => {
      const { graph, feeds, output } = convGraph(c);
      assertWithin(await runGraph(graph, feeds, output, 'webgpu'), await runGraph(graph, feeds, output, 'cpu'), 1e-5, c.name);
    });
  }

  for (const c of NET_CASES.filter((net) => net.onWebGpu)) {
    it(`${c.name}: the WebGPU gradient graph on onnx:webgpu = the CPU one on onnx:cpu, to 1e-4 × max`, async () => {
      const model = c.build();
      try {
        const cpu = netGradientGraph(model, c.rule, 'cpu');
        const gpu = netGradientGraph(model, c.rule, 'webgpu');
        const [expected, actual] = [await runGraph(cpu.graph, cpu.feeds, cpu.graph.outputs[0].name, 'cpu'), await runGraph(gpu.graph, cpu.feeds, gpu.graph.outputs[0].name, 'webgpu')];
        assertWithin(actual, expected, 1e-4, c.name);
      } finally {
        model.dispose();
      }
    });
  }

  for (const id of CAMS) {
    it(`${id}: pytorch-grad-cam’s map at relu3 (raw to 1e-3 × max) and final map (2e-3)`, async () => {
      // ScoreCAM and AblationCAM run a forward per channel: two images keep them quick.
      const images = id === 'scorecam' || id === 'ablationcam' ? 2 : 4;
      const x = slice(images);
      try {
        const params: Params = id === 'fullgrad' ? {} : { layer: golden.target_layer };
        const result = await explainer(id).explainInput(gpu, x, { ...params, target: 'predicted' });
        assert.deepEqual(result.targets, golden.predicted.slice(0, images));
        await assertCamMatches(concat(result.maps), `cam-${id}-predicted.npy`, () => 2e-3, images);
        if (id === 'fullgrad') return; // its golden has no raw map
        const raw = await explainer(id).rawMaps!(gpu, x, golden.predicted.slice(0, images), params);
        const rawData = Float32Array.from(raw[0].dataSync());
        tf.dispose(raw);
        await assertCamMatches(rawData, `cam-${id}-predicted-raw.npy`, (expected) => 1e-3 * maxAbs(expected), images);
      } finally {
        x.dispose();
      }
    });
  }

  for (const [id, { params, images }] of Object.entries(CAPTUM)) {
    it(`${id}: Captum’s attributions to 1e-3 × max${images < 4 ? ` (${images} image)` : ''}`, async () => {
      const x = slice(images);
      try {
        const result = await explainer(id).explainInput(gpu, x, params);
        assert.deepEqual(result.targets, golden.predicted.slice(0, images));
        assertWithin(concat(result.attributions!), firstImages(await goldenArray(`attr-${id}.npy`), images), 1e-3, id);
      } finally {
        x.dispose();
      }
    });
  }

  for (const [id, params] of Object.entries(AGAINST_CPU)) {
    it(`${id}: no golden — the attributions of onnx:cpu, same seed, to 1e-3 × max (2 images)`, async () => {
      const x = slice(2);
      try {
        const [onGpu, onCpu] = [await explainer(id).explainInput(gpu, x, params), await explainer(id).explainInput(cpu, x, params)];
        assertWithin(concat(onGpu.attributions!), concat(onCpu.attributions!), 1e-3, id);
      } finally {
        x.dispose();
      }
    });
  }

  it('confidence-change: pytorch-grad-cam’s metric cases (by logit and by softmax) to 1e-4', async () => {
    const inputs = await readNpy(path.join(TINY, 'inputs.npy'));
    const cams = await readNpy(path.join(TINY, 'cam-gradcam-predicted.npy'));
    const [n, h, w] = cams.shape;
    const maps: MapArray[] = Array.from({ length: n }, (_, i) => ({ data: (cams.data as Float32Array).slice(i * h * w, (i + 1) * h * w), height: h, width: w }));
    const column: Record<string, string> = { 'confidence-change': 'change', 'drop-in-confidence': 'drop', 'increase-in-confidence': 'increase' };
    const cases = golden.cases.filter((c) => c.metric !== undefined);
    assert.equal(cases.length, 6);
    for (const score of ['logit', 'softmax'] as const) {
      const params = { perturbation: 'darken', cover: 'unimportant', score } as ConfidenceChangeParams;
      const rows: MetricValues[] = await scoreWithModel(confidenceChange.spec, gpu, arrayInputs(inputs.data as Float32Array, inputs.shape as [number, number, number, number]), async (i) => maps[i], params, { batchSize: 3 });
      for (const c of cases.filter((m) => m.score === score)) {
        const expected = await readNpy(path.join(TINY, c.file));
        rows.forEach((row, i) => {
          const value = row[column[c.metric as string]];
          const actual = typeof value === 'boolean' ? Number(value) : (value as number);
          assert.ok(Math.abs(actual - Number(expected.data[i])) <= 1e-4, `${c.file}, image ${i}: ${actual}, pytorch-grad-cam ${Number(expected.data[i])}`);
        });
      }
    }
  });
});
