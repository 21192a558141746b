/**
 * GradientSHAP (Lundberg & Lee 2017) as Captum 0.8's GradientShap computes
 * it: per image, `samples` draws of a baseline b (uniformly from the
 * `baselines` list), of Gaussian noise ε with standard deviation `stdevs`
 * and of α ~ U(0, 1); x̃ = x + ε; attribution = mean of
 * (x̃ − b) · ∇f(α·x̃ + (1 − α)·b). Draws are seeded per image.
 */
import * as tf from '@tensorflow/tfjs';
import { seededRandom } from '../../../core/random.ts';
import { BASELINE_PARAM, BLUR_SIGMA_PARAM, INTERNAL_BATCH_PARAM, SEED_PARAM, accumulate, baselineFor, defineAttributionExplainer, imageSeeds, inChunks, inputGradient } from './attribution-base.ts';

export const gradientShap = defineAttributionExplainer({
  id: 'gradient-shap',
  version: '1',
  description: 'GradientSHAP: expected (x + ε − b) · ∇f at random points between noisy input and baselines drawn from a set (Captum GradientShap).',
  params: {
    samples: { type: 'integer', minimum: 1, default: 5, description: 'Random draws per image (Captum n_samples).' },
    stdevs: { type: 'number', minimum: 0, default: 0, description: 'Standard deviation of the Gaussian noise added to the input, in the network’s input space (Captum stdevs).' },
    baselines: { type: 'array', items: BASELINE_PARAM, minItems: 1, default: ['zeros', 'uniform'], description: 'The baseline distribution: each draw picks one of these uniformly (see baseline of integrated-gradients for the kinds).' },
    blurSigma: BLUR_SIGMA_PARAM,
    seed: SEED_PARAM,
    internalBatchSize: INTERNAL_BATCH_PARAM,
  },
  async attribute(batch, params) {
    const { model, input, targets } = batch;
    const [n, h, w, c] = input.shape;
    const samples = params.samples as number;
    const stdevs = params.stdevs as number;
    const seeds = imageSeeds(input, params.seed as number);
    const kinds = params.baselines as unknown[];
    const distribution: tf.Tensor4D[] = [];
    const perImage: tf.Tensor4D[] = [];
    try {
      for (const kind of kinds) distribution.push(await baselineFor(kind as never, batch, { seeds, blurSigma: params.blurSigma as number }));
      for (let i = 0; i < n; i++) {
        const random = seededRandom(seeds[i]);
        const picks = Array.from({ length: samples }, () => Math.min(kinds.length - 1, Math.floor(random() * kinds.length)));
        const alphas = Array.from({ length: samples }, () => random());
        const image = tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]);
        const noisy = tf.tidy(() => (stdevs > 0 ? tf.add(image, tf.randomNormal([samples, h, w, c], 0, stdevs, 'float32', seeds[i])) : tf.tile(image, [samples, 1, 1, 1])));
        const references = tf.tidy(() => tf.concat(picks.map((k) => tf.slice(distribution[k], [i, 0, 0, 0], [1, -1, -1, -1])), 0));
        let sum: tf.Tensor4D | undefined;
        await inChunks(samples, params.internalBatchSize as number, async (start, count) => {
          const [x, b] = [tf.slice(noisy, [start, 0, 0, 0], [count, -1, -1, -1]), tf.slice(references, [start, 0, 0, 0], [count, -1, -1, -1])];
          const held: tf.Tensor[] = [x, b];
          try {
            const scaled = tf.tidy(() => {
              const alpha = tf.tensor4d(alphas.slice(start, start + count), [count, 1, 1, 1]);
              return tf.add(tf.mul(alpha, x), tf.mul(tf.sub(1, alpha), b)) as tf.Tensor4D;
            });
            held.push(scaled);
            const gradient = await inputGradient(model, scaled, new Array(count).fill(targets[i]));
            held.push(gradient);
            sum = accumulate(sum, tf.tidy(() => tf.sum(tf.mul(tf.sub(x, b), gradient), 0, true) as tf.Tensor4D));
          } finally {
            tf.dispose(held);
          }
        });
        perImage.push(tf.div(sum!, samples));
        tf.dispose([image, noisy, references, sum!]);
      }
      return tf.concat(perImage, 0);
    } finally {
      tf.dispose([...distribution, ...perImage]);
    }
  },
});
