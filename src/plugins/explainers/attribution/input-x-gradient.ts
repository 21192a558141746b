/** Input × gradient (Shrikumar et al. 2016; Captum's InputXGradient). */
import * as tf from '@tensorflow/tfjs';
import { defineAttributionExplainer, inputGradient } from './attribution-base.ts';

export const inputXGradient = defineAttributionExplainer({
  id: 'input-x-gradient',
  version: '1',
  description: 'Input × gradient: x · ∂ logit / ∂ x (Captum InputXGradient).',
  params: {},
  async attribute({ model, input, targets }) {
    const gradient = await inputGradient(model, input, targets);
    try {
      return tf.mul(input, gradient) as tf.Tensor4D;
    } finally {
      gradient.dispose();
    }
  },
});
