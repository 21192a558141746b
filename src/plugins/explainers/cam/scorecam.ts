/**
 * `scorecam`: Score-CAM — each channel, upsampled (align-corners bilinear) and
 * min-max scaled, masks the input; the channel weights are the softmax over
 * channels of the masked inputs' target logits.
 */
import * as tf from '@tensorflow/tfjs';
import { batchSizeParam, channelWeighted, defineCam, scoresOf } from './cam-base.ts';

export const scorecam = defineCam({
  id: 'scorecam',
  version: '1',
  description: 'Score-CAM (pytorch-grad-cam 1.5.5 ScoreCAM): channels weighted by the softmax of the target scores of the input masked by each upsampled channel.',
  usesGradients: false,
  params: { batchSize: batchSizeParam(16, 'Masked inputs') },
  weighted: async ({ model, input, targets, activations, options }) => {
    const [n, height, width] = input.shape;
    const channels = activations.shape[3];
    const scores = new Float32Array(n * channels);
    for (let i = 0; i < n; i++) {
      const image = tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]);
      try {
        for (let start = 0; start < channels; start += options.batchSize) {
          const count = Math.min(options.batchSize, channels - start);
          const masked = tf.tidy(() => {
            const upsampled = tf.image.resizeBilinear(tf.slice(activations, [i, 0, 0, start], [1, -1, -1, count]), [height, width], true);
            const low = tf.min(upsampled, [1, 2], true);
            const masks = tf.div(tf.sub(upsampled, low), tf.add(tf.sub(tf.max(upsampled, [1, 2], true), low), 1e-8));
            return tf.mul(tf.transpose(masks, [3, 1, 2, 0]), image) as tf.Tensor4D;
          });
          let logits: tf.Tensor2D;
          try {
            logits = await model.engine.scores(masked);
          } finally {
            masked.dispose();
          }
          const chunk = scoresOf(logits, targets[i]);
          logits.dispose();
          scores.set(chunk.dataSync(), i * channels + start);
          chunk.dispose();
        }
      } finally {
        image.dispose();
      }
    }
    return tf.tidy(() => channelWeighted(activations, tf.softmax(tf.tensor2d(scores, [n, channels]))));
  },
});
