/** `eigencam`: EigenCAM — the activations projected on their first principal component (no gradients). */
import * as tf from '@tensorflow/tfjs';
import { defineCam } from './cam-base.ts';

export const eigencam = defineCam({
  id: 'eigencam',
  version: '1',
  description: 'EigenCAM (pytorch-grad-cam 1.5.5): the target layer’s activations projected on their first principal component; class-independent.',
  usesGradients: false,
  alwaysProjects: true,
  weighted: ({ activations }) => tf.clone(activations),
});
