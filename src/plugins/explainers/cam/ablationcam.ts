/**
 * `ablationcam`: Ablation-CAM — each channel of the target layer is ablated in
 * turn and the network run on from there; a channel's weight is the relative
 * drop of the target score, (original − ablated) / original.
 */
import * as tf from '@tensorflow/tfjs';
import { batchSizeParam, channelWeighted, defineCam, scoresOf } from './cam-base.ts';

/**
 * What the reference's AblationLayer writes into the ablated channel of each
 * row of a chunk: 0 where the activations' minimum is 0, else the minimum
 * less 1e7 — a minimum it takes again after each row, so row r of a chunk gets
 * min − (r+1)·1e7 (float32).
 */
function ablationValues(minimum: number, rows: number): Float32Array {
  const values = new Float32Array(rows);
  if (minimum === 0) return values;
  let current = Math.fround(minimum);
  for (let r = 0; r < rows; r++) values[r] = current = Math.fround(current - 1e7);
  return values;
}

export const ablationcam = defineCam({
  id: 'ablationcam',
  version: '1',
  description: 'Ablation-CAM (pytorch-grad-cam 1.5.5 AblationCAM): channels weighted by the relative drop of the target score when each is ablated.',
  usesGradients: false,
  params: { batchSize: batchSizeParam(32, 'Ablated copies of the activations') },
  weighted: async ({ model, input, targets, layer, activations, options }) => {
    const [n, , , channels] = activations.shape;
    const logits = await model.engine.scores(input);
    let original: tf.Tensor1D;
    try {
      original = tf.tidy(() => tf.concat(targets.map((target, i) => scoresOf(tf.slice(logits, [i, 0], [1, -1]), target))));
    } finally {
      logits.dispose();
    }
    const minima = tf.min(activations, [1, 2, 3]);
    const minimum = minima.dataSync();
    minima.dispose();
    const ablated = new Float32Array(n * channels);
    try {
      for (let i = 0; i < n; i++) {
        const image = tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]);
        const own = tf.slice(activations, [i, 0, 0, 0], [1, -1, -1, -1]);
        try {
          for (let start = 0; start < channels; start += options.batchSize) {
            const count = Math.min(options.batchSize, channels - start);
            const rows = tf.tidy(() => {
              // Row r ablates channel start + r (oneHot in int32, then cast: wasm's float OneHot is wrong).
              const hot = tf.reshape(tf.cast(tf.oneHot(tf.range(start, start + count, 1, 'int32'), channels), 'float32'), [count, 1, 1, channels]);
              const fill = tf.reshape(tf.tensor1d(ablationValues(minimum[i], count)), [count, 1, 1, 1]);
              return tf.add(tf.mul(tf.tile(own, [count, 1, 1, 1]), tf.sub(1, hot)), tf.mul(hot, fill));
            });
            let scores: tf.Tensor2D;
            try {
              // The module's output is replaced (DenseNet's norm5: before the ReLU that follows it), as the reference's ablation layer does.
              scores = await model.engine.forwardFromLayer(layer.gradient, rows, { input: image });
            } finally {
              rows.dispose();
            }
            const chunk = scoresOf(scores, targets[i]);
            scores.dispose();
            ablated.set(chunk.dataSync(), i * channels + start);
            chunk.dispose();
          }
        } finally {
          image.dispose();
          own.dispose();
        }
      }
      return tf.tidy(() => {
        const before = tf.reshape(original, [n, 1]);
        return channelWeighted(activations, tf.div(tf.sub(before, tf.tensor2d(ablated, [n, channels])), before) as tf.Tensor2D);
      });
    } finally {
      original.dispose();
    }
  },
});
