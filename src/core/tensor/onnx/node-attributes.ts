/** Typed reads of a node's attributes, with ONNX's defaults. */
import type { GraphNode } from './graph.ts';

export function intAttribute(node: GraphNode, name: string, fallback: number): number {
  const attribute = node.attributes?.[name];
  return attribute !== undefined && 'int' in attribute ? attribute.int : fallback;
}

export function floatAttribute(node: GraphNode, name: string, fallback: number): number {
  const attribute = node.attributes?.[name];
  return attribute !== undefined && 'float' in attribute ? attribute.float : fallback;
}

export function intsAttribute(node: GraphNode, name: string): readonly number[] | undefined {
  const attribute = node.attributes?.[name];
  return attribute !== undefined && 'ints' in attribute ? attribute.ints : undefined;
}

export function stringAttribute(node: GraphNode, name: string, fallback: string): string {
  const attribute = node.attributes?.[name];
  return attribute !== undefined && 'string' in attribute ? attribute.string : fallback;
}

/** Spatial geometry of a Conv or pooling node over an input of `inputShape` [N, C, ...spatial] giving `outputShape`. */
export interface Window {
  readonly kernel: readonly number[];
  readonly strides: readonly number[];
  readonly dilations: readonly number[];
  /** Explicit pads before and after each spatial axis (auto_pad resolved). */
  readonly before: readonly number[];
  readonly after: readonly number[];
}

export function windowOf(node: GraphNode, inputShape: readonly number[], outputShape: readonly number[], kernel: readonly number[]): Window {
  const rank = inputShape.length - 2;
  const ones = new Array<number>(rank).fill(1);
  const strides = intsAttribute(node, 'strides') ?? ones;
  const dilations = intsAttribute(node, 'dilations') ?? ones;
  const autoPad = stringAttribute(node, 'auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const pads = intsAttribute(node, 'pads') ?? new Array<number>(2 * rank).fill(0);
    return { kernel, strides, dilations, before: pads.slice(0, rank), after: pads.slice(rank) };
  }
  const before: number[] = [];
  const after: number[] = [];
  for (let i = 0; i < rank; i++) {
    const extent = (kernel[i] - 1) * dilations[i] + 1;
    const total = autoPad === 'VALID' ? 0 : Math.max(0, (outputShape[i + 2] - 1) * strides[i] + extent - inputShape[i + 2]);
    const small = Math.floor(total / 2);
    before.push(autoPad === 'SAME_LOWER' ? total - small : small);
    after.push(total - before[i]);
  }
  return { kernel, strides, dilations, before, after };
}

/**
 * How a transposed window op (ConvTranspose) gives back exactly `inputSize`
 * from `outputSize` positions: the pads to crop at the end and the
 * output_padding to add, per axis. Windows may overhang the padded input
 * (ceil mode) or leave its last rows unread (floor mode).
 */
export function transposedEnds(window: Window, inputShape: readonly number[], outputShape: readonly number[]): { after: number[]; outputPadding: number[] } {
  const after: number[] = [];
  const outputPadding: number[] = [];
  window.kernel.forEach((k, i) => {
    const extent = (k - 1) * window.dilations[i] + 1;
    const crop = (outputShape[i + 2] - 1) * window.strides[i] + extent - window.before[i] - inputShape[i + 2];
    after.push(Math.max(crop, 0));
    outputPadding.push(Math.max(-crop, 0));
  });
  return { after, outputPadding };
}
