/** `gradcam`: Grad-CAM (pytorch-grad-cam GradCAM) — each channel weighted by its mean gradient. */
import * as tf from '@tensorflow/tfjs';
import { channelWeighted, defineCam } from './cam-base.ts';

export const gradcam = defineCam({
  id: 'gradcam',
  version: '1',
  description: 'Grad-CAM (pytorch-grad-cam 1.5.5 GradCAM): activations weighted per channel by their spatially averaged gradient.',
  usesGradients: true,
  weighted: ({ activations, gradients }) => tf.tidy(() => channelWeighted(activations, tf.mean(gradients!, [1, 2]) as tf.Tensor2D)),
});
