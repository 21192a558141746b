/**
 * Depthwise convolutions on graph-valued kernels moved to ONNX Runtime's
 * NCHWc kernels on the CPU (onnx/nchwc-graph.ts), as OnnxSession.fromGraph
 * does for every CPU session:
 *
 * - the rewritten graph computes what the plain one does on onnx:cpu (to
 *   1e-5 of the largest value: only the order of the sums differs) for the
 *   shapes training graphs hold — forward depthwise convolutions with a bias,
 *   strides, TensorFlow's asymmetric 'same' pads and dilations, and a weight
 *   gradient's depthwise convolution with dy as its kernel;
 * - a value two rewritten convolutions read is reordered once, also through
 *   the Reshape [N, C, H, W] → [1, N·C, H, W] by which a weight gradient
 *   reads the forward's input and its dy;
 * - constant kernels (ONNX Runtime's own optimizer reorders those), channel
 *   counts off the block and ordinary convolutions are left alone.
 *
 * OnnxSession.fromGraph rewrites only where nchwcBlockSize's self-check (a
 * small rewritten graph against its plain form) passes, which it must here.
 * Whole training steps through the rewritten graphs are checked against the
 * tfjs trainer in onnx-training.test.ts (its network has depthwise layers of
 * 16 channels for this). Skipped, saying why, where this machine's ONNX
 * Runtime has no NCHWc kernels (no AVX2).
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { seededRandom } from '../src/core/random.ts';
import type { Graph } from '../src/core/tensor/onnx/graph.ts';
import { float32Tensor } from '../src/core/tensor/onnx/graph.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { NCHWC_DOMAIN, withNchwcConvs } from '../src/core/tensor/onnx/nchwc-graph.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { OnnxSession, nchwcBlockSize, nchwcKernelBlock, type HostTensor } from '../src/core/tensor/onnx/session.ts';
import { convAttributes, convOutputShape, type ConvCase } from './conv-cases.ts';
import { largestError } from './helpers.ts';

// The kernels' own block, not nchwcBlockSize's (which is 0 where its self-check fails: these tests must see that).
const block = await nchwcKernelBlock();
const SKIP = block > 0 ? false : 'ONNX Runtime here has no NCHWc kernels (they need AVX2), so nothing is rewritten';

const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** A depthwise convolution (group = channels), with its kernel as a graph input and maybe a bias. */
type DepthwiseCase = Omit<ConvCase, 'outputs' | 'group'> & { readonly bias?: boolean };

const CASES: readonly DepthwiseCase[] = [
  { name: '3×3, pads 1, a bias', input: [2, 32, 9, 11], kernel: [3, 3], pads: [1, 1, 1, 1], bias: true },
  { name: '3×3 stride 2, TensorFlow’s “same” pads (0, 0, 1, 1)', input: [3, 16, 12, 12], kernel: [3, 3], strides: [2, 2], pads: [0, 0, 1, 1] },
  { name: '3×3 dilation 2, pads 2', input: [1, 48, 10, 10], kernel: [3, 3], dilations: [2, 2], pads: [2, 2, 2, 2] },
  // A weight gradient as backward-conv.ts writes it on the CPU: x [1, N·C, H, W], dy [N·C, 1, OH, OW] as the
  // kernel, strides and dilations exchanged (the forward's stride 2 is the dilation here), output [1, N·C, 3, 3].
  { name: 'a stride-2 weight gradient (a 6×6 kernel at dilation 2 on 12×12)', input: [1, 64, 12, 12], kernel: [6, 6], dilations: [2, 2], pads: [0, 0, 1, 1] },
];

/** x and the kernel (and bias) as graph inputs → a depthwise Conv → y. */
function depthwiseGraph(c: DepthwiseCase, constantKernel = false): Graph {
  const channels = c.input[1];
  const b = new GraphBuilder(c.name);
  const x = b.addInput('x', c.input);
  const kernelShape = [channels, 1, ...c.kernel];
  const w = constantKernel
    ? b.constant('w', float32Tensor(Float32Array.from({ length: size(kernelShape) }, (_, i) => Math.sin(i)), kernelShape))
    : b.addInput('w', kernelShape);
  const inputs = [x, w, ...(c.bias ? [b.addInput('bias', [channels])] : [])];
  const depthwise: ConvCase = { ...c, group: channels };
  b.addOutput(b.op('Conv', inputs, 'y', convOutputShape(depthwise), convAttributes(depthwise)));
  return b.build();
}

function feeds(graph: Graph): Record<string, HostTensor> {
  const random = seededRandom(3);
  return Object.fromEntries(graph.inputs.map((info) => [info.name, { data: Float32Array.from({ length: size(info.shape) }, () => 2 * random() - 1), shape: info.shape }]));
}

async function run(graph: Graph, inputs: Record<string, HostTensor>): Promise<Float32Array> {
  const session = await OnnxSession.create(serializeGraph(graph), { device: 'cpu', threads: 2 });
  try {
    const [y] = await session.run(inputs, [graph.outputs[0].name]);
    return y.data;
  } finally {
    await session.release();
  }
}

const nchwcOps = (graph: Graph) => graph.nodes.filter((node) => node.domain === NCHWC_DOMAIN).map((node) => node.op);

describe('depthwise convolutions on graph-valued kernels run on the NCHWc kernels (onnx:cpu)', { skip: SKIP }, () => {
  before(() => assert.ok(block === 8 || block === 16, `block size ${block}`));

  it('the self-check passes here: sessions use the kernels’ block', async () => {
    assert.equal(await nchwcBlockSize(), block);
  });

  for (const c of CASES) {
    it(`${c.name}: rewritten, and the same values as the plain Conv`, async () => {
      const graph = depthwiseGraph(c);
      const rewritten = withNchwcConvs(graph, block);
      assert.deepEqual(nchwcOps(rewritten), ['ReorderInput', 'Conv', 'ReorderOutput']);
      const inputs = feeds(graph);
      const [expected, actual] = [await run(graph, inputs), await run(rewritten, inputs)];
      const { error, scale } = largestError(actual, expected);
      assert.ok(scale > 0 && error <= 1e-5 * scale, `max |NCHWc − plain| = ${error} against ${scale}`);
    });
  }

  it('reorders a value once, also through the Reshape by which a weight gradient reads it', async () => {
    // x feeds a depthwise Conv, and as [1, N·C, H, W] a second one (a weight gradient's form) with a Reshape of dy as its kernel.
    const [n, channels, h, w] = [2, 16, 8, 8];
    const b = new GraphBuilder('shared');
    const x = b.addInput('x', [n, channels, h, w]);
    const kernel = b.addInput('w', [channels, 1, 3, 3]);
    const dy = b.addInput('dy', [n, channels, h, w]);
    const forward = b.op('Conv', [x, kernel], 'y', [n, channels, h, w], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] }, group: { int: channels } });
    const reshape = (value: string, shape: number[], name: string) => b.op('Reshape', [value, b.int64(`${name}.shape`, shape)], name, shape);
    const asChannels = reshape(x, [1, n * channels, h, w], 'x.asChannels');
    const dyKernel = reshape(dy, [n * channels, 1, h, w], 'dy.asKernel');
    const gradient = b.op('Conv', [asChannels, dyKernel], 'dw', [1, n * channels, 3, 3], { kernel_shape: { ints: [h, w] }, pads: { ints: [1, 1, 1, 1] }, group: { int: n * channels } });
    const dyBack = b.op('Conv', [dy, kernel], 'dx', [n, channels, h, w], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] }, group: { int: channels } });
    for (const output of [forward, gradient, dyBack]) b.addOutput(output);
    const graph = b.build();
    const rewritten = withNchwcConvs(graph, block);
    assert.deepEqual(nchwcOps(rewritten).filter((op) => op === 'ReorderInput').length, 2, 'x and dy reordered once each');
    assert.equal(rewritten.nodes.filter((node) => node.op === 'Transpose').length, 1, 'only the weight is rearranged by a Transpose; dy as a kernel takes its reordered blocks');
    const inputs = feeds(graph);
    for (const output of [forward, gradient, dyBack]) {
      const single = { ...graph, outputs: graph.outputs.filter((info) => info.name === output) };
      const [expected, actual] = [await run(single, inputs), await run({ ...rewritten, outputs: single.outputs }, inputs)];
      const { error, scale } = largestError(actual, expected);
      assert.ok(error <= 1e-5 * scale, `${output}: max |NCHWc − plain| = ${error} against ${scale}`);
    }
  });

  it('leaves constant kernels, channel counts off the block and ordinary convolutions alone', () => {
    const base = CASES[0];
    const constant = depthwiseGraph(base, true);
    assert.equal(withNchwcConvs(constant, block), constant, 'a constant kernel is ONNX Runtime’s own to reorder');
    const offBlock = depthwiseGraph({ ...base, input: [2, 12, 9, 11] });
    assert.equal(withNchwcConvs(offBlock, block), offBlock, '12 channels');
    const b = new GraphBuilder('ordinary');
    const x = b.addInput('x', [1, 16, 6, 6]);
    const w = b.addInput('w', [16, 16, 3, 3]);
    b.addOutput(b.op('Conv', [x, w], 'y', [1, 16, 6, 6], { kernel_shape: { ints: [3, 3] }, pads: { ints: [1, 1, 1, 1] } }));
    const ordinary = b.build();
    assert.equal(withNchwcConvs(ordinary, block), ordinary, 'a convolution with group 1');
  });

  it('OnnxSession.fromGraph applies it on the CPU: a depthwise step computes the same through it', async () => {
    const graph = depthwiseGraph(CASES[1]);
    const inputs = feeds(graph);
    const session = await OnnxSession.fromGraph(graph, { device: 'cpu', threads: 2 });
    try {
      const [actual] = await session.run(inputs, ['y']);
      const { error, scale } = largestError(actual.data, await run(graph, inputs));
      assert.ok(error <= 1e-5 * scale, `max |fromGraph − plain| = ${error} against ${scale}`);
    } finally {
      await session.release();
    }
  });
});
