/**
 * What the ONNX engine (onnx-engine.ts) needs of a model to run it: forward
 * graphs at a static batch, and how the model's layer names map to graph
 * values. A tfjs layers-model exports its graphs (layers-model-graphs.ts); an
 * ONNX file from elsewhere is read and shaped (imported-model.ts). Both give
 * graphs that take NHWC images and record each value's layout, so taps and
 * gradients come out NHWC whichever the model is.
 */
import type { Layout } from './export.ts';
import type { Graph } from './graph.ts';

export interface ForwardGraph {
  /** One input, one output. */
  readonly graph: Graph;
  /** NHWC images [batch, height, width, channels]. */
  readonly input: string;
  /** Class scores [batch, classes]. */
  readonly output: string;
  /** The layout of every value a layer name can resolve to (and of the input and output). */
  readonly layouts: ReadonlyMap<string, Layout>;
}

export interface EngineGraphs {
  /** The model's name in messages. */
  readonly name: string;
  /** Identifies the model's graphs: sessions are shared between engines on models with the same fingerprint. */
  fingerprint(): string;
  /** Number of class scores. */
  classes(): number;
  /** Whether the model's output is a softmax (its logits are the softmax's input). */
  finalSoftmax(): boolean;
  /** The forward graph for `rows` images, ending in the softmax where `softmax` (and the model has one), else in the logits. */
  forward(rows: number, softmax: boolean): ForwardGraph;
  /** The graph value a layer name means; a UserError naming the nearest layers when there is none. */
  value(forward: ForwardGraph, layer: string): string;
  /** Whether the class scores depend on the layer's output. */
  reachesScore(forward: ForwardGraph, layer: string): boolean;
}
