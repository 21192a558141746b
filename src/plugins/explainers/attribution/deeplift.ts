/**
 * DeepLift with the rescale rule (Shrikumar et al. 2017), as Captum 0.8's
 * DeepLift computes it: inputs and baselines run as one batch; each ReLU (and
 * ELU, sigmoid, tanh, softplus) passes back Δout/Δin, max pooling Captum's own
 * rule (see deepLiftRules); attribution = (x − baseline) · that gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { BASELINE_PARAM, BLUR_SIGMA_PARAM, SEED_PARAM, baselineFor, defineAttributionExplainer, inputGradient } from './attribution-base.ts';

export const deepLift = defineAttributionExplainer({
  id: 'deeplift',
  // 2: layers the torch original applies functionally (GoogLeNet's ReLUs, DenseNet's last) keep their plain gradient, as in Captum.
  version: '2',
  description: 'DeepLift, rescale rule, Captum’s max-pool rule: (x − baseline) · multipliers (Captum DeepLift); as Captum hooks modules, activations the torch model applies functionally (F.relu) keep their plain gradient.',
  params: { baseline: BASELINE_PARAM, blurSigma: BLUR_SIGMA_PARAM, seed: SEED_PARAM },
  async attribute(batch, params) {
    const { model, input, targets } = batch;
    const baseline = await baselineFor(params.baseline, batch, { seed: params.seed as number, blurSigma: params.blurSigma as number });
    const held: tf.Tensor[] = [baseline];
    try {
      const both = tf.concat([input, baseline], 0);
      held.push(both);
      const gradient = await inputGradient(model, both, [...targets, ...targets], 'deeplift');
      held.push(gradient);
      return tf.tidy(() => tf.mul(tf.sub(input, baseline), tf.slice(gradient, [0, 0, 0, 0], [input.shape[0], -1, -1, -1])) as tf.Tensor4D);
    } finally {
      tf.dispose(held);
    }
  },
});
