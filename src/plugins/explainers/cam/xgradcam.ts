/** `xgradcam`: XGrad-CAM — channel weights Σ gradient × activation / (Σ activation + 1e-7). */
import * as tf from '@tensorflow/tfjs';
import { channelWeighted, defineCam } from './cam-base.ts';

export const xgradcam = defineCam({
  id: 'xgradcam',
  version: '1',
  description: 'XGrad-CAM (pytorch-grad-cam 1.5.5): channel weights are the gradients times the activations normalised by the channel’s activation sum.',
  usesGradients: true,
  weighted: ({ activations, gradients }) =>
    tf.tidy(() => {
      const channelSums = tf.sum(activations, [1, 2], true);
      const weights = tf.sum(tf.div(tf.mul(gradients!, activations), tf.add(channelSums, 1e-7)), [1, 2]) as tf.Tensor2D;
      return channelWeighted(activations, weights);
    }),
});
