/**
 * UnsortedSegmentSum for wasm, which has none; gather's gradient (embeddings,
 * any tf.gather in a trained graph) needs it.
 *
 * wasm's ScatterNd adds rows that share an index, which is exactly a segment
 * sum. Ids outside [0, numSegments) contribute nothing, as in TensorFlow and
 * the cpu backend; they are masked rather than trusted to ScatterNd.
 * segmentIds may have any rank that prefixes x's shape (TensorFlow's rule).
 */
import * as tf from '@tensorflow/tfjs';
import { type KernelArgs, kernelInput } from './compose.ts';

const KERNEL = 'UnsortedSegmentSum';

export function unsortedSegmentSum({ inputs, backend, attrs }: KernelArgs): tf.Tensor {
  const { numSegments } = attrs as unknown as tf.UnsortedSegmentSumAttrs;
  return tf.tidy(() => {
    const x = kernelInput(KERNEL, inputs, 'x', backend);
    const ids = kernelInput(KERNEL, inputs, 'segmentIds', backend);
    const prefix = x.shape.slice(0, ids.rank);
    if (ids.shape.some((d, i) => d !== prefix[i])) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape [${ids.shape.join(', ')}] must prefix x shape [${x.shape.join(', ')}]`);
    }
    const rest = x.shape.slice(ids.rank);
    const count = ids.size;
    if (count === 0) return tf.zeros([numSegments, ...rest], x.dtype);
    const flatIds = tf.reshape(ids, [count]);
    const valid = tf.logicalAnd(tf.greaterEqual(flatIds, 0), tf.less(flatIds, numSegments));
    const safeIds = tf.where(valid, flatIds, tf.zerosLike(flatIds));
    const rows = tf.reshape(x, [count, ...rest]);
    const keep = tf.cast(tf.reshape(valid, [count, ...rest.map(() => 1)]), x.dtype);
    return tf.scatterND(tf.reshape(safeIds, [count, 1]), tf.mul(rows, keep), [numSegments, ...rest]);
  });
}
