/**
 * Axis permutations of C-order arrays on the host, and of axis lists: torch's
 * and tfjs's weight layouts (torch-weights.ts), the training vectors
 * (onnx-trainer.ts), and the Transposes of gradient graphs.
 */

/** Reorders a C-order array of `shape` so that axis i of the result is axis perm[i] of the input. */
export function permute(data: Float32Array, shape: readonly number[], perm: readonly number[]): Float32Array {
  const rank = shape.length;
  const outShape = perm.map((axis) => shape[axis]);
  const inStrides = new Array<number>(rank);
  let stride = 1;
  for (let axis = rank - 1; axis >= 0; axis--) {
    inStrides[axis] = stride;
    stride *= shape[axis];
  }
  const strides = perm.map((axis) => inStrides[axis]);
  const out = new Float32Array(data.length);
  const index = new Array<number>(rank).fill(0);
  // The source offset follows the output index: one stride on, and back where an axis wraps.
  let source = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = data[source];
    for (let axis = rank - 1; axis >= 0; axis--) {
      source += strides[axis];
      if (++index[axis] < outShape[axis]) break;
      source -= strides[axis] * outShape[axis];
      index[axis] = 0;
    }
  }
  return out;
}

/** The permutation that undoes `perm`. */
export function inversePermutation(perm: readonly number[]): number[] {
  const inverse = new Array<number>(perm.length);
  perm.forEach((axis, i) => (inverse[axis] = i));
  return inverse;
}
