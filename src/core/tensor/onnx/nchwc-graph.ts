/**
 * Depthwise convolutions whose kernel is a graph value, on ONNX Runtime's
 * NCHWc kernels (CPU provider).
 *
 * ONNX Runtime's CPU provider runs a Conv with a constant kernel on MLAS's
 * NCHWc kernels (activations in blocks of 8 or 16 channels, the width of the
 * machine's vectors): its graph optimizer reorders the constant kernel once,
 * at session creation. A kernel that is a graph value — every weight of a
 * training graph, a flipped kernel in an input gradient, dy as the kernel of
 * a weight gradient — gets no such rewrite, and a depthwise one then runs as
 * an im2col and a matrix product per channel. This pass writes those
 * depthwise convolutions with the NCHWc operators ONNX Runtime's CPU build
 * carries (domain com.microsoft.nchwc): the input reordered into blocks
 * (ReorderInput), the kernel [C, 1, kh, kw] rearranged in the graph into the
 * layout MLAS reads — [C/b, kh, kw, b], i.e. Reshape [C/b, b, kh·kw],
 * Transpose (0, 2, 1) — and the output reordered back (ReorderOutput).
 *
 * Measured op by op at batch 8, 2 threads, AVX-512 (b = 16), with both
 * reorders: MobileNetV2's depthwise weight gradients (dy as the kernel, one
 * group per image and channel: see backward-conv.ts) 1.1–1.8× faster than
 * the transposed grouped convolution, the forward and stride-1 input
 * gradients 1.4–3.5×; the same reordering for ordinary convolutions
 * (ResNet's 3×3 and 1×1) was between 1.5× faster and 1.5× slower, so only
 * depthwise convolutions are rewritten.
 *
 * A value that two rewritten convolutions read is reordered once. The
 * blocked layout of [N, C, H, W] with C a multiple of b is the same memory
 * as that of [1, N·C, H, W], so a Reshape between the two (how a weight
 * gradient reads the forward's input) reuses the forward's reordered input.
 *
 * Only convolutions whose channels are a multiple of the block and whose
 * kernel depends on a graph input are rewritten; OnnxSession.fromGraph
 * applies the pass to CPU sessions where ONNX Runtime has NCHWc kernels and
 * a small graph rewritten for them computes what its plain form does
 * (nchwcBlockSize, once per process: a build whose kernels read another
 * layout would otherwise train wrong without a word).
 */
import { GraphBuilder } from './graph-builder.ts';
import { GraphIndex } from './graph-index.ts';
import type { Graph, GraphNode, ValueInfo } from './graph.ts';
import { intAttribute, intsAttribute, windowOf } from './node-attributes.ts';

export const NCHWC_DOMAIN = 'com.microsoft.nchwc';

/** The probe graph: ReorderInput of [1, 4, 1, 1]; its output's channels are the block size. */
export function nchwcProbeGraph(): Graph {
  const x: ValueInfo = { name: 'x', dtype: 'float32', shape: [1, 4, 1, 1] };
  return {
    name: 'nchwc-probe',
    inputs: [x],
    outputs: [{ name: 'blocked', dtype: 'float32', shape: [1, -1, 1, 1] }],
    nodes: [{ op: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: ['x'], outputs: ['blocked'] }],
    initializers: new Map(),
    values: new Map([['x', x]]),
  };
}

/**
 * A graph whose rewrite (withNchwcConvs at `block`) must compute what it
 * computes, to check that this machine's NCHWc kernels read the layout this
 * pass writes before any session relies on it: a strided depthwise Conv with
 * TensorFlow's asymmetric pads and a weight as its kernel (the Transpose
 * path), and a weight gradient's Conv with a Reshape of dy as its kernel
 * (the reordered-activations path). Inputs x, w and dy; outputs y and dw.
 */
export function nchwcCheckGraph(block: number): Graph {
  const [n, channels, size] = [2, 2 * block, 6];
  const b = new GraphBuilder('nchwc-check');
  const x = b.addInput('x', [n, channels, size, size]);
  const w = b.addInput('w', [channels, 1, 3, 3]);
  const dy = b.addInput('dy', [n, channels, size, size]);
  const conv = (inputs: string[], name: string, shape: number[], kernel: number[], strides: number[], pads: number[], group: number) =>
    b.op('Conv', inputs, name, shape, { kernel_shape: { ints: kernel }, strides: { ints: strides }, pads: { ints: pads }, group: { int: group } });
  const reshape = (value: string, shape: number[], name: string) => b.op('Reshape', [value, b.int64(`${name}.shape`, shape)], name, shape);
  b.addOutput(conv([x, w], 'y', [n, channels, size / 2, size / 2], [3, 3], [2, 2], [0, 0, 1, 1], channels));
  const images = reshape(x, [1, n * channels, size, size], 'x.asChannels');
  const kernel = reshape(dy, [n * channels, 1, size, size], 'dy.asKernel');
  b.addOutput(conv([images, kernel], 'dw', [1, n * channels, 3, 3], [size, size], [1, 1], [1, 1, 1, 1], n * channels));
  return b.build();
}

/** Whether `node` is a depthwise 2-D convolution this pass rewrites at block size `block`. */
function rewritable(node: GraphNode, index: GraphIndex, variable: ReadonlySet<string>, block: number): boolean {
  if (node.op !== 'Conv' || node.domain !== undefined) return false;
  const [x, w] = node.inputs;
  const xShape = index.shape(x);
  const wShape = index.shape(w);
  if (xShape.length !== 4 || wShape.length !== 4) return false;
  const channels = xShape[1];
  if (channels % block !== 0 || intAttribute(node, 'group', 1) !== channels || wShape[0] !== channels || wShape[1] !== 1) return false;
  // A kernel computed from constants alone is ONNX Runtime's to fold and reorder itself.
  return variable.has(w);
}

/** The graph with its depthwise convolutions on graph-valued kernels written with NCHWc operators of block `block` (see the file's comment). */
export function withNchwcConvs(graph: Graph, block: number): Graph {
  const index = new GraphIndex(graph);
  /** The values computed from the graph's inputs. */
  const variable = index.descendants(graph.inputs.map((info) => info.name));
  if (!graph.nodes.some((node) => rewritable(node, index, variable, block))) return graph;
  // Fresh names, the new constants and every new value's shape; the nodes are listed below, in the graph's order.
  const builder = GraphBuilder.from(graph);
  const record = (base: string, shape: readonly number[]): string => {
    const name = builder.fresh(base);
    builder.values.set(name, { name, dtype: 'float32', shape });
    return name;
  };

  /**
   * The value `x` [A, B, H, W] is a Reshape of, where that value is [N, C, H, W] with C a multiple of the block: its
   * blocks are x's blocks, in the same order (only the split between the first two axes differs).
   */
  const viewSource = (x: string): string | undefined => {
    const producer = index.producer(x);
    if (producer?.op !== 'Reshape' || producer.domain !== undefined) return undefined;
    const [shape, sourceShape] = [index.shape(x), index.shape(producer.inputs[0])];
    const same = sourceShape.length === 4 && sourceShape[1] % block === 0 && sourceShape[2] === shape[2] && sourceShape[3] === shape[3];
    return same ? producer.inputs[0] : undefined;
  };
  const reshape = (value: string, name: string, shape: readonly number[]): GraphNode => ({ op: 'Reshape', inputs: [value, builder.int64(`${name}.shape`, shape)], outputs: [name], name: `${name}/Reshape` });
  /** make(), once per value and memo. */
  const once = (memo: Map<string, string>, value: string, make: () => string): string => {
    if (!memo.has(value)) memo.set(value, make());
    return memo.get(value) as string;
  };
  const reordered = new Map<string, string>();
  /** x [N, C, H, W] (C a multiple of the block) in blocks, from nodes appended to `added`; once per value. */
  const blocked = (x: string, added: GraphNode[]): string => once(reordered, x, () => {
    const name = record(`${x}.blocked`, index.shape(x));
    const source = viewSource(x);
    added.push(source !== undefined
      ? reshape(blocked(source, added), name, index.shape(x))
      : { op: 'ReorderInput', domain: NCHWC_DOMAIN, inputs: [x], outputs: [name], name: `${name}/ReorderInput` });
    return name;
  });
  const reorderedKernels = new Map<string, string>();
  /**
   * The kernel [C, 1, kh, kw] as MLAS's depthwise NCHWc kernels read it, [C/b, kh, kw, b]: the blocked layout of
   * [1, C, kh, kw]. A kernel that is a Reshape of activations (dy in a weight gradient) takes their blocks, which the
   * input gradient's convolution of dy reorders too; a weight is rearranged by a Transpose (it is small).
   */
  const blockedKernel = (w: string, added: GraphNode[]): string => once(reorderedKernels, w, () => {
    const shape = index.shape(w);
    const name = record(`${w}.blocked`, shape);
    const source = viewSource(w);
    if (source !== undefined) {
      added.push(reshape(blocked(source, added), name, shape));
      return name;
    }
    const byBlock = [shape[0] / block, block, shape[2] * shape[3]];
    const grouped = record(`${w}.channelBlocks`, byBlock);
    const swapped = record(`${w}.blockInner`, [byBlock[0], byBlock[2], block]);
    added.push(
      reshape(w, grouped, byBlock),
      { op: 'Transpose', inputs: [grouped], outputs: [swapped], attributes: { perm: { ints: [0, 2, 1] } }, name: `${swapped}/Transpose` },
      reshape(swapped, name, shape),
    );
    return name;
  });

  const nodes = graph.nodes.flatMap((node): GraphNode[] => {
    if (!rewritable(node, index, variable, block)) return [node];
    const [x, w, bias] = node.inputs;
    const y = node.outputs[0];
    const xShape = index.shape(x);
    const yShape = index.shape(y);
    const wShape = index.shape(w);
    const window = windowOf(node, xShape, yShape, intsAttribute(node, 'kernel_shape') ?? wShape.slice(2));
    const added: GraphNode[] = [];
    const xBlocked = blocked(x, added);
    const kernel = blockedKernel(w, added);
    const yBlocked = record(`${y}.blocked`, yShape);
    const label = node.name ?? y;
    added.push(
      {
        op: 'Conv',
        domain: NCHWC_DOMAIN,
        inputs: bias !== undefined && bias !== '' ? [xBlocked, kernel, bias] : [xBlocked, kernel],
        outputs: [yBlocked],
        attributes: {
          kernel_shape: { ints: window.kernel },
          strides: { ints: window.strides },
          dilations: { ints: window.dilations },
          pads: { ints: [...window.before, ...window.after] },
          group: { int: xShape[1] },
        },
        name: `${label}/nchwc`,
      },
      { op: 'ReorderOutput', domain: NCHWC_DOMAIN, inputs: [yBlocked], outputs: [y], attributes: { channels: { int: yShape[1] } }, name: `${label}/ReorderOutput` },
    );
    return added;
  });
  return { ...graph, nodes, initializers: builder.initializers, values: builder.values };
}
