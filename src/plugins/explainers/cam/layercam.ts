/** `layercam`: LayerCAM — activations weighted element-wise by their positive gradients. */
import * as tf from '@tensorflow/tfjs';
import { defineCam } from './cam-base.ts';

export const layercam = defineCam({
  id: 'layercam',
  version: '1',
  description: 'LayerCAM (pytorch-grad-cam 1.5.5): activations times the positive part of their gradients, summed over channels.',
  usesGradients: true,
  weighted: ({ activations, gradients }) => tf.tidy(() => tf.mul(activations, tf.relu(gradients!)) as tf.Tensor4D),
});
