/**
 * Helpers for kernels written as compositions of other tfjs ops. A kernel func
 * may return a Tensor (the engine takes it as is), and ops called inside one
 * run on the active backend without being recorded on a gradient tape, so each
 * kernel is a `tf.tidy` over ordinary ops: intermediates are freed, only the
 * result survives.
 */
import * as tf from '@tensorflow/tfjs';

/** What tfjs hands a kernel function. */
export interface KernelArgs {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs?: tf.NamedAttrMap;
}

/**
 * Ops need Tensors; kernels are handed TensorInfos, which in practice are
 * already Tensors. A bare TensorInfo gets a tracked wrapper with its own
 * reference, so that disposing the wrapper (the enclosing tidy does) never
 * frees the caller's data.
 */
export function kernelInput(kernel: string, inputs: tf.NamedTensorInfoMap, name: string, backend: unknown): tf.Tensor {
  const info = inputs[name];
  if (!info) throw new Error(`${kernel}: input ${name} is missing`);
  if (info instanceof tf.Tensor) return info;
  (backend as tf.KernelBackend).incRef(info.dataId);
  return tf.engine().makeTensorFromTensorInfo(info, backend as tf.KernelBackend);
}

/**
 * Pads (positive amounts) or crops (negative amounts) the two spatial axes of
 * an NHWC tensor: gradient formulas often need "the input extended or cut to
 * exactly the rows the windows read", and tf.pad refuses negative pads.
 */
export function padOrCrop(x: tf.Tensor4D, top: number, bottom: number, left: number, right: number, value = 0): tf.Tensor4D {
  const [n, h, w, c] = x.shape;
  let out = x;
  if (top > 0 || bottom > 0 || left > 0 || right > 0) {
    out = tf.pad(out, [[0, 0], [Math.max(top, 0), Math.max(bottom, 0)], [Math.max(left, 0), Math.max(right, 0)], [0, 0]], value);
  }
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    const rows = h + top + bottom;
    const cols = w + left + right;
    out = tf.slice(out, [0, Math.max(-top, 0), Math.max(-left, 0), 0], [n, rows, cols, c]);
  }
  return out;
}

/**
 * Inserts stride−1 zeros between neighbouring pixels, the usual way to turn a
 * strided correlation's adjoint into a stride-1 one. Done with reshape + pad
 * (both fast on wasm) instead of a scatter. The result keeps stride−1 trailing
 * zero rows and columns; callers crop them with their own padding.
 */
export function zeroDilate(x: tf.Tensor4D, strideH: number, strideW: number): tf.Tensor4D {
  if (strideH === 1 && strideW === 1) return x;
  const [n, h, w, c] = x.shape;
  const spread = tf.pad(tf.reshape(x, [n, h, 1, w, 1, c]), [[0, 0], [0, 0], [0, strideH - 1], [0, 0], [0, strideW - 1], [0, 0]]);
  return tf.reshape(spread, [n, h * strideH, w * strideW, c]);
}

export function assertShape(what: string, actual: readonly number[], expected: readonly number[]): void {
  if (actual.length !== expected.length || actual.some((d, i) => d !== expected[i])) {
    throw new Error(`${what}: expected shape [${expected.join(', ')}], got [${actual.join(', ')}]`);
  }
}

export function assertFloat32(kernel: string, ...tensors: tf.Tensor[]): void {
  for (const t of tensors) {
    if (t.dtype !== 'float32') throw new Error(`${kernel} on wasm takes float32 tensors, got ${t.dtype}`);
  }
}
