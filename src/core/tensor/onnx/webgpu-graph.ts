/**
 * A graph as ONNX Runtime's WebGPU provider computes it correctly.
 *
 * ONNX Runtime 1.23.2's WebGPU convolutions give wrong values for some
 * shapes, and which ones depends on the layout the provider is asked for
 * (checked one convolution at a time against its CPU provider, on lavapipe):
 *
 * - NCHW: ordinary network layers — 3×3 convolutions of 128 channels on 8²
 *   or 4² maps, 512→512 on 7², strided 3×3 and 1×1 convolutions of 256 and
 *   more channels on 28² and 14² (ResNet101's layers 3 and 4 at 224²);
 * - NHWC (its default, and salgrid's choice: session.ts): only
 *   convolutions whose input has 6, 9, 15, 18… channels with a kernel
 *   larger than 1×1, and transposed convolutions to one channel from 5, 7,
 *   9… channels. Such counts appear in gradient graphs (a weight gradient
 *   convolves over the batch as channels) and in small models.
 *
 * So this pass pads the input channels of those convolutions with zeros to
 * a multiple of 4 — zero channels with zero weights add nothing to any sum —
 * and leaves every other node as it is. OnnxSession.fromGraph applies it to
 * every WebGPU session salgrid makes.
 */
import { GraphIndex } from './graph-index.ts';
import { elementCount, float32Tensor, type Graph, type GraphNode } from './graph.ts';
import { GraphBuilder } from './graph-builder.ts';
import { intAttribute } from './node-attributes.ts';

/** Whether the provider's NHWC kernel for this convolution miscomputes with `channels` input channels (per group of 1). */
function unsafeChannels(node: GraphNode, channels: number, weights: readonly number[]): boolean {
  if (channels % 4 === 0 || channels <= 4 || intAttribute(node, 'group', 1) !== 1 || weights.length !== 4) return false;
  if (node.op === 'Conv') return weights[2] * weights[3] > 1;
  return node.op === 'ConvTranspose';
}

/** The graph with the input channels of the convolutions the provider miscomputes padded to a multiple of 4 (see the file's comment). */
export function forWebGpu(graph: Graph): Graph {
  const index = new GraphIndex(graph);
  // Fresh names, the new constants and their shapes; the nodes are listed below, in the graph's order.
  const builder = GraphBuilder.from(graph);
  /** `value` with `extra` zeros appended along `axis` (a new constant for a constant, else a Pad node). */
  const padded = (value: string, axis: number, extra: number, added: GraphNode[]): string => {
    const shape = index.shape(value);
    const grown = shape.map((size, i) => (i === axis ? size + extra : size));
    const name = builder.fresh(`${value}.channels${grown[axis]}`);
    const constant = index.constant(value);
    if (constant?.dtype === 'float32') {
      const data = constant.data as Float32Array;
      const out = new Float32Array(elementCount(grown));
      const outer = elementCount(shape.slice(0, axis));
      const inner = elementCount(shape.slice(axis + 1));
      for (let o = 0; o < outer; o++) out.set(data.subarray(o * shape[axis] * inner, (o + 1) * shape[axis] * inner), o * grown[axis] * inner);
      builder.initializers.set(name, float32Tensor(out, grown));
    } else {
      const pads = builder.int64(`${name}.pads`, [...shape.map(() => 0), ...shape.map((_, i) => (i === axis ? extra : 0))]);
      added.push({ op: 'Pad', inputs: [value, pads], outputs: [name], name: `${name}/Pad` });
    }
    builder.values.set(name, { name, dtype: graph.values.get(value)?.dtype ?? 'float32', shape: grown });
    return name;
  };

  let changed = false;
  const nodes = graph.nodes.flatMap((node): GraphNode[] => {
    if (node.op !== 'Conv' && node.op !== 'ConvTranspose') return [node];
    const input = index.shape(node.inputs[0]);
    const weights = index.shape(node.inputs[1]);
    if (input.length !== 4 || !unsafeChannels(node, input[1], weights)) return [node];
    changed = true;
    const extra = 4 - (input[1] % 4);
    const added: GraphNode[] = [];
    // Conv's weights are [out, in, kh, kw], ConvTranspose's [in, out, kh, kw].
    const x = padded(node.inputs[0], 1, extra, added);
    const w = padded(node.inputs[1], node.op === 'Conv' ? 1 : 0, extra, added);
    return [...added, { ...node, inputs: [x, w, ...node.inputs.slice(2)] }];
  });
  return changed ? { ...graph, nodes, initializers: builder.initializers, values: builder.values } : graph;
}
