/** Guided backpropagation (Springenberg et al. 2015; Captum's GuidedBackprop): ReLUs pass back only positive gradients where their input was positive. */
import { defineAttributionExplainer, inputGradient } from './attribution-base.ts';

export const guidedBackprop = defineAttributionExplainer({
  id: 'guided-backprop',
  // 2: ReLUs the torch original applies functionally (all of GoogLeNet's, DenseNet's last) stay plain, as in Captum.
  version: '2',
  description: 'Guided backprop: the input gradient with every ReLU module passing back only positive gradients where its input was positive (Captum GuidedBackprop, which hooks nn.ReLU modules: a functional F.relu, as all of torchvision GoogLeNet’s, stays plain).',
  params: {},
  attribute: ({ model, input, targets }) => inputGradient(model, input, targets, 'guided'),
});
