/** `gradcam-elementwise`: Grad-CAM with the ReLU inside — max(gradient × activation, 0), summed over channels. */
import * as tf from '@tensorflow/tfjs';
import { defineCam } from './cam-base.ts';

export const gradcamElementwise = defineCam({
  id: 'gradcam-elementwise',
  version: '1',
  description: 'Element-wise Grad-CAM (pytorch-grad-cam 1.5.5 GradCAMElementWise): ReLU of gradients times activations, summed over channels.',
  usesGradients: true,
  weighted: ({ activations, gradients }) => tf.tidy(() => tf.relu(tf.mul(activations, gradients!)) as tf.Tensor4D),
});
