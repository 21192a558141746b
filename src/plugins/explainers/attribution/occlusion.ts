/**
 * Occlusion (Zeiler & Fergus 2014) as Captum 0.8's Occlusion computes it: a
 * window over all channels slides by `stride`, ceil((size − window) /
 * stride) + 1 positions per axis (the last one cut at the border); each
 * occluded copy (the window replaced by the baseline) scores
 * f(x) − f(x_occluded), and a pixel's attribution is the sum of the scores
 * of the windows covering it divided by their number — the same for every
 * channel. Windows are separable (rows × columns), so sums and counts are
 * Rᵀ·D·C with R, C the row and column masks and D the score grid.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../../core/errors.ts';
import { BASELINE_PARAM, BLUR_SIGMA_PARAM, INTERNAL_BATCH_PARAM, SEED_PARAM, baselineFor, defineAttributionExplainer, inChunks, targetLogits } from './attribution-base.ts';

const PAIR = (description: string, fallback: number): Record<string, unknown> => ({
  anyOf: [{ type: 'integer', minimum: 1 }, { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 2, maxItems: 2 }],
  default: [fallback, fallback],
  description,
});

/** Window masks along one axis, [positions, size]: Captum's shifts k·stride, the last window cut at the border. */
function axisMasks(size: number, window: number, stride: number): number[][] {
  if (window > size) throw new UserError(`occlusion: the window (${window}) is larger than the image (${size}).`);
  if (window < size && stride > window) throw new UserError(`occlusion: the stride (${stride}) is larger than the window (${window}); Captum does not allow it.`);
  const positions = Math.ceil((size - window) / stride) + 1;
  return Array.from({ length: positions }, (_, k) => Array.from({ length: size }, (_, i) => (i >= k * stride && i < k * stride + window ? 1 : 0)));
}

export const occlusion = defineAttributionExplainer({
  id: 'occlusion',
  version: '1',
  description: 'Occlusion: mean drop of the target logit over the sliding windows (all channels) covering each pixel (Captum Occlusion).',
  params: {
    window: PAIR('Window [height, width] in pixels (a number: square).', 16),
    stride: PAIR('Shift [vertical, horizontal] between windows (a number: both); at most the window.', 8),
    baseline: BASELINE_PARAM,
    blurSigma: BLUR_SIGMA_PARAM,
    seed: SEED_PARAM,
    internalBatchSize: INTERNAL_BATCH_PARAM,
  },
  async attribute(batch, params) {
    const { model, input, targets } = batch;
    const [n, h, w, c] = input.shape;
    const pair = (value: unknown) => (Array.isArray(value) ? [Number(value[0]), Number(value[1])] : [Number(value), Number(value)]);
    const [wh, ww] = pair(params.window);
    const [sh, sw] = pair(params.stride);
    const rowMasks = axisMasks(h, wh, sh);
    const colMasks = axisMasks(w, ww, sw);
    const windows = rowMasks.length * colMasks.length;
    const baseline = await baselineFor(params.baseline, batch, { seed: params.seed as number, blurSigma: params.blurSigma as number });
    const rows = tf.tensor2d(rowMasks);
    const cols = tf.tensor2d(colMasks);
    try {
      const before = await targetLogits(model, input, targets);
      const drops = new Float32Array(n * windows);
      for (let i = 0; i < n; i++) {
        const image = tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]);
        const reference = tf.slice(baseline, [i, 0, 0, 0], [1, -1, -1, -1]);
        try {
          await inChunks(windows, params.internalBatchSize as number, async (start, count) => {
            const occluded = tf.tidy(() => {
              const k = Array.from({ length: count }, (_, j) => start + j);
              const r = tf.gather(rows, tf.tensor1d(k.map((j) => Math.floor(j / colMasks.length)), 'int32'));
              const q = tf.gather(cols, tf.tensor1d(k.map((j) => j % colMasks.length), 'int32'));
              const mask = tf.reshape(tf.mul(tf.reshape(r, [count, h, 1]), tf.reshape(q, [count, 1, w])), [count, h, w, 1]);
              return tf.add(tf.mul(image, tf.sub(1, mask)), tf.mul(reference, mask)) as tf.Tensor4D;
            });
            try {
              const scores = await targetLogits(model, occluded, new Array(count).fill(targets[i]));
              scores.forEach((s, j) => (drops[i * windows + start + j] = before[i] - s));
            } finally {
              occluded.dispose();
            }
          });
        } finally {
          tf.dispose([image, reference]);
        }
      }
      return tf.tidy(() => {
        const grid = tf.tensor3d(drops, [n, rowMasks.length, colMasks.length]);
        const rowsT = tf.transpose(rows);
        // Σ over windows covering a pixel, per image: Rᵀ·D·C; and how many cover it: (Rᵀ·1)(1ᵀ·C).
        const sums = tf.matMul(tf.matMul(tf.tile(tf.expandDims(rowsT, 0), [n, 1, 1]) as tf.Tensor3D, grid), tf.tile(tf.expandDims(cols, 0), [n, 1, 1]) as tf.Tensor3D);
        const counts = tf.mul(tf.reshape(tf.sum(rows, 0), [h, 1]), tf.reshape(tf.sum(cols, 0), [1, w]));
        return tf.tile(tf.expandDims(tf.div(sums, counts), 3), [1, 1, 1, c]) as tf.Tensor4D;
      });
    } finally {
      tf.dispose([baseline, rows, cols]);
    }
  },
});
