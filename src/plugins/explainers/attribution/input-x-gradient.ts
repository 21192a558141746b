/** Input × gradient (Shrikumar et al. 2016; Captum's InputXGradient). */
import * as tf from '@tensorflow/tfjs';
import { inputGradient } from '../../../core/tensor/gradients.ts';
import { defineAttributionExplainer } from './attribution-base.ts';

export const inputXGradient = defineAttributionExplainer({
  id: 'input-x-gradient',
  version: '1',
  description: 'Input × gradient: x · ∂ logit / ∂ x (Captum InputXGradient).',
  params: {},
  attribute: ({ model, input, targets }) => tf.tidy(() => tf.mul(input, inputGradient(model.model, input, targets)) as tf.Tensor4D),
});
