/** One 2-D convolution as the op-level ONNX tests describe it, and what they derive from it. */
import type { Attribute } from '../src/core/tensor/onnx/graph.ts';

export interface ConvCase {
  readonly name: string;
  /** x, NCHW. */
  readonly input: [number, number, number, number];
  /** Output channels (default: the input's, as a depthwise convolution has). */
  readonly outputs?: number;
  readonly kernel: [number, number];
  readonly strides?: [number, number];
  readonly dilations?: [number, number];
  /** [top, left, bottom, right]. */
  readonly pads: [number, number, number, number];
  /** Default 1. */
  readonly group?: number;
}

/** y's shape, NCHW. */
export function convOutputShape(c: ConvCase): number[] {
  const spatial = [0, 1].map((axis) =>
    Math.floor((c.input[2 + axis] + c.pads[axis] + c.pads[2 + axis] - ((c.dilations?.[axis] ?? 1) * (c.kernel[axis] - 1) + 1)) / (c.strides?.[axis] ?? 1)) + 1);
  return [c.input[0], c.outputs ?? c.input[1], ...spatial];
}

/** The Conv node's attributes. */
export function convAttributes(c: ConvCase): Record<string, Attribute> {
  return {
    kernel_shape: { ints: c.kernel },
    strides: { ints: c.strides ?? [1, 1] },
    dilations: { ints: c.dilations ?? [1, 1] },
    pads: { ints: c.pads },
    group: { int: c.group ?? 1 },
  };
}
