/** `eigengradcam`: EigenGradCAM — gradient × activation projected on its first principal component. */
import * as tf from '@tensorflow/tfjs';
import { defineCam } from './cam-base.ts';

export const eigengradcam = defineCam({
  id: 'eigengradcam',
  version: '1',
  description: 'EigenGradCAM (pytorch-grad-cam 1.5.5): gradients times activations, projected on their first principal component.',
  usesGradients: true,
  alwaysProjects: true,
  weighted: ({ activations, gradients }) => tf.mul(activations, gradients!) as tf.Tensor4D,
});
