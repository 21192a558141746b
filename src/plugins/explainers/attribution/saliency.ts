/** Saliency (Simonyan et al. 2014; Captum's Saliency): the gradient of the target logit with respect to the input, absolute by default. */
import * as tf from '@tensorflow/tfjs';
import { inputGradient } from '../../../core/tensor/gradients.ts';
import { defineAttributionExplainer } from './attribution-base.ts';

export const saliency = defineAttributionExplainer({
  id: 'saliency',
  version: '1',
  description: 'Saliency: |∂ logit / ∂ input| (Captum Saliency, abs=True).',
  params: { abs: { type: 'boolean', default: true, description: 'Take the gradient’s absolute value (Captum’s abs, default true).' } },
  attribute: ({ model, input, targets }, params) =>
    tf.tidy(() => {
      const gradient = inputGradient(model.model, input, targets) as tf.Tensor4D;
      return params.abs === false ? gradient : tf.abs(gradient);
    }),
});
