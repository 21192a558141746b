/** Saliency (Simonyan et al. 2014; Captum's Saliency): the gradient of the target logit with respect to the input, absolute by default. */
import * as tf from '@tensorflow/tfjs';
import { defineAttributionExplainer, inputGradient } from './attribution-base.ts';

export const saliency = defineAttributionExplainer({
  id: 'saliency',
  version: '1',
  description: 'Saliency: |∂ logit / ∂ input| (Captum Saliency, abs=True).',
  params: { abs: { type: 'boolean', default: true, description: 'Take the gradient’s absolute value (Captum’s abs, default true).' } },
  async attribute({ model, input, targets }, params) {
    const gradient = await inputGradient(model, input, targets);
    if (params.abs === false) return gradient;
    try {
      return tf.abs(gradient);
    } finally {
      gradient.dispose();
    }
  },
});
