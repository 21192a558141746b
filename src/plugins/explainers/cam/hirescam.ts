/** `hirescam`: HiResCAM — gradient × activation per element, summed over channels. */
import * as tf from '@tensorflow/tfjs';
import { defineCam } from './cam-base.ts';

export const hirescam = defineCam({
  id: 'hirescam',
  version: '1',
  description: 'HiResCAM (pytorch-grad-cam 1.5.5): gradients times activations element-wise, summed over channels.',
  usesGradients: true,
  weighted: ({ activations, gradients }) => tf.mul(activations, gradients!) as tf.Tensor4D,
});
