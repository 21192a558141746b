/** `gradcam++`: Grad-CAM++ — channel weights from second- and third-order gradient terms (eq. 19 of arXiv:1710.11063). */
import * as tf from '@tensorflow/tfjs';
import { channelWeighted, defineCam } from './cam-base.ts';

export const gradcamPlusPlus = defineCam({
  id: 'gradcam++',
  version: '1',
  description: 'Grad-CAM++ (pytorch-grad-cam 1.5.5 GradCAMPlusPlus): channel weights Σ relu(g)·g²/(2g² + Σa·g³ + 1e-6), zero where g = 0.',
  usesGradients: true,
  weighted: ({ activations, gradients }) =>
    tf.tidy(() => {
      const g = gradients!;
      const g2 = tf.square(g);
      const g3 = tf.mul(g2, g);
      const channelSums = tf.sum(activations, [1, 2], true);
      const alpha = tf.div(g2, tf.add(tf.add(tf.mul(g2, 2), tf.mul(channelSums, g3)), 1e-6));
      const nonZero = tf.where(tf.notEqual(g, 0), alpha, tf.zerosLike(alpha));
      const weights = tf.sum(tf.mul(tf.relu(g), nonZero), [1, 2]) as tf.Tensor2D;
      return channelWeighted(activations, weights);
    }),
});
