/** Guided backpropagation (Springenberg et al. 2015; Captum's GuidedBackprop): ReLUs pass back only positive gradients where their input was positive. */
import { defineAttributionExplainer, inputGradient } from './attribution-base.ts';

export const guidedBackprop = defineAttributionExplainer({
  id: 'guided-backprop',
  version: '1',
  description: 'Guided backprop: the input gradient with every ReLU passing back only positive gradients where its input was positive (Captum GuidedBackprop).',
  params: {},
  attribute: ({ model, input, targets }) => inputGradient(model, input, targets, 'guided'),
});
