/**
 * MaxPoolGrad for wasm, replacing tfjs-backend-wasm 4.22.0's own, which is
 * wrong: its window maximum starts from FLT_MIN (1.18e-38) instead of −∞, so
 * a window whose values are all ≤ 0 sends its gradient to the window's first
 * element (all negative) or drops it (all zero). MaxPoolWithArgmax has the
 * same flaw. Nets that pool straight after a ReLU do not notice; any other
 * pooled input does (checked against the cpu backend and a brute-force sum).
 *
 * Rebuilt from fast ops with the cpu backend's rule: each window's gradient
 * goes to the first position, in row-major window order, that equals the
 * window's maximum (the forward output, which wasm computes correctly).
 * Strided slices are slow on wasm, so the padded input is viewed as
 * [n, rows/s, s, cols/s, s, c]: every window tap is then a plain slice, and
 * the taps' gradients are summed per stride phase and interleaved back.
 */
import * as tf from '@tensorflow/tfjs';
import { type KernelArgs, kernelInput, assertFloat32, assertShape, padOrCrop } from './compose.ts';

const KERNEL = 'MaxPoolGrad';

export function maxPoolGrad({ inputs, backend, attrs }: KernelArgs): tf.Tensor {
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as tf.MaxPoolGradAttrs;
  return tf.tidy(() => {
    const x = kernelInput(KERNEL, inputs, 'input', backend) as tf.Tensor4D;
    const y = kernelInput(KERNEL, inputs, 'output', backend) as tf.Tensor4D;
    const dy = kernelInput(KERNEL, inputs, 'dy', backend) as tf.Tensor4D;
    assertFloat32(KERNEL, x, y, dy);
    const info = tf.backend_util.computePool2DInfo(x.shape, filterSize, strides, 1, pad, dimRoundingMode);
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, padInfo } = info;
    assertShape('MaxPoolGrad dy', dy.shape, [n, oh, ow, c]);
    assertShape('MaxPoolGrad output', y.shape, [n, oh, ow, c]);

    // Padded extent: covers every window and the whole input, a whole number of strides.
    const qRows = Math.ceil(Math.max((oh - 1) * sh + kh, padInfo.top + h) / sh);
    const qCols = Math.ceil(Math.max((ow - 1) * sw + kw, padInfo.left + w) / sw);
    const xp = padOrCrop(x, padInfo.top, qRows * sh - h - padInfo.top, padInfo.left, qCols * sw - w - padInfo.left, -Infinity);
    const byRowPhase = tf.reshape(xp, [n, qRows, sh, qCols * sw * c]);

    const phases = new Map<number, tf.Tensor4D[]>(); // phase index → tap gradients placed on the [n, qRows, qCols, c] grid
    let taken: tf.Tensor | null = null;
    for (let a = 0; a < kh; a++) {
      const qa = Math.floor(a / sh);
      const ra = a % sh;
      const rowsOfTap = tf.reshape(tf.slice(byRowPhase, [0, qa, ra, 0], [n, oh, 1, qCols * sw * c]), [n * oh, qCols, sw, c]);
      for (let b = 0; b < kw; b++) {
        const qb = Math.floor(b / sw);
        const rb = b % sw;
        const values = tf.reshape(tf.slice(rowsOfTap, [0, qb, rb, 0], [n * oh, ow, 1, c]), [n, oh, ow, c]);
        const isMax = tf.equal(values, y);
        const first: tf.Tensor = taken === null ? isMax : tf.logicalAnd(isMax, tf.logicalNot(taken));
        taken = taken === null ? isMax : tf.logicalOr(taken, isMax);
        const grad = tf.mul(tf.cast(first, 'float32'), dy) as tf.Tensor4D;
        const placed = qa === 0 && qb === 0 && qRows === oh && qCols === ow
          ? grad
          : tf.pad(grad, [[0, 0], [qa, qRows - qa - oh], [qb, qCols - qb - ow], [0, 0]]);
        const key = ra * sw + rb;
        phases.set(key, [...(phases.get(key) ?? []), placed]);
      }
    }

    const phaseGrid = (ra: number, rb: number): tf.Tensor => {
      const parts = phases.get(ra * sw + rb);
      if (!parts) return tf.zeros([n, qRows, qCols, c]);
      return parts.length === 1 ? parts[0] : tf.addN(parts);
    };
    let full: tf.Tensor;
    if (sh === 1 && sw === 1) {
      full = phaseGrid(0, 0);
    } else {
      const rowPhases = Array.from({ length: sh }, (_, ra) => tf.stack(Array.from({ length: sw }, (_, rb) => phaseGrid(ra, rb)), 3));
      full = tf.reshape(tf.stack(rowPhases, 2), [n, qRows * sh, qCols * sw, c]);
    }
    return tf.slice(full, [0, padInfo.top, padInfo.left, 0], [n, h, w, c]);
  });
}
