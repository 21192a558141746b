/**
 * SmoothGrad (Smilkov et al. 2017) and VarGrad (Adebayo et al. 2018) around
 * any gradient explainer, as Captum 0.8's NoiseTunnel computes them: per
 * image, `samples` copies x + ε with ε ~ N(0, noiseStd²) (absolute standard
 * deviation in the network's input space, Captum's stdevs); smoothgrad = the
 * mean of their attributions, vargrad = mean of squares − square of mean.
 * Noise is seeded per image.
 */
import * as tf from '@tensorflow/tfjs';
import type { JsonSchema, Params } from '../../../core/plugins/types.ts';
import { SEED_PARAM, accumulate, defineAttributionExplainer, imageSeeds, inChunks, type AttributionExplainer } from './attribution-base.ts';
import { deepLift } from './deeplift.ts';
import { gradientShap } from './gradient-shap.ts';
import { guidedBackprop } from './guided-backprop.ts';
import { inputXGradient } from './input-x-gradient.ts';
import { integratedGradients } from './integrated-gradients.ts';
import { saliency } from './saliency.ts';

const WRAPPED: Record<string, AttributionExplainer> = Object.fromEntries([saliency, inputXGradient, integratedGradients, gradientShap, deepLift, guidedBackprop].map((e) => [e.id, e]));

function noiseTunnel(kind: 'smoothgrad' | 'vargrad', description: string): AttributionExplainer {
  const params: Record<string, JsonSchema> = {
    method: { enum: Object.keys(WRAPPED), default: 'saliency', description: `The gradient explainer whose attributions over noisy copies are ${kind === 'smoothgrad' ? 'averaged' : 'reduced to their variance'}.` },
    methodParams: { type: 'object', default: {}, description: 'Params of that explainer (its own defaults fill the rest; its map params are not used).' },
    samples: { type: 'integer', minimum: 1, default: 5, description: 'Noisy copies per image (Captum nt_samples).' },
    noiseStd: { type: 'number', minimum: 0, default: 1, description: 'Standard deviation of the Gaussian noise, absolute, in the network’s input space (Captum stdevs; default 1.0 as Captum’s).' },
    samplesPerBatch: { type: 'integer', minimum: 1, default: 8, description: 'Noisy copies given to the wrapped explainer at once (Captum nt_samples_batch_size): bounds memory, does not change the result.' },
    seed: SEED_PARAM,
  };
  return defineAttributionExplainer({
    id: kind,
    // 2: its wrapped guided-backprop and deeplift leave functional layers plain (their version 2).
    version: '2',
    description,
    params,
    // The wrapped explainer's files (an integrated-gradients baseline image…) key this one too.
    paramFiles: (p, manifestDir) => WRAPPED[p.method as string].paramFiles((p.methodParams ?? {}) as Params, manifestDir),
    async attribute(batch, p) {
      const inner = WRAPPED[p.method as string];
      const innerParams = inner.withDefaults((p.methodParams ?? {}) as Params);
      const { input, targets } = batch;
      const [n, h, w, c] = input.shape;
      const samples = p.samples as number;
      const seeds = imageSeeds(input, p.seed as number);
      const results: tf.Tensor4D[] = [];
      try {
        for (let i = 0; i < n; i++) {
          const noisy = tf.tidy(() => tf.add(tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]), tf.randomNormal([samples, h, w, c], 0, p.noiseStd as number, 'float32', seeds[i])) as tf.Tensor4D);
          let sum: tf.Tensor4D | undefined;
          let squares: tf.Tensor4D | undefined;
          await inChunks(samples, p.samplesPerBatch as number, async (start, count) => {
            const chunk = tf.slice(noisy, [start, 0, 0, 0], [count, -1, -1, -1]);
            const attribution = await inner.attribute({ ...batch, input: chunk, targets: new Array(count).fill(targets[i]) }, innerParams);
            sum = accumulate(sum, tf.sum(attribution, 0, true));
            squares = accumulate(squares, tf.sum(tf.square(attribution), 0, true));
            tf.dispose([chunk, attribution]);
          });
          noisy.dispose();
          results.push(
            tf.tidy(() => {
              const mean = tf.div(sum!, samples);
              return (kind === 'smoothgrad' ? mean : tf.sub(tf.div(squares!, samples), tf.square(mean))) as tf.Tensor4D;
            }),
          );
          tf.dispose([sum!, squares!]);
        }
        return tf.concat(results, 0);
      } finally {
        tf.dispose(results);
      }
    },
  });
}

export const smoothGrad = noiseTunnel('smoothgrad', 'SmoothGrad: the mean attribution of a gradient explainer over noisy copies of the input (Captum NoiseTunnel smoothgrad).');
export const varGrad = noiseTunnel('vargrad', 'VarGrad: the variance of a gradient explainer’s attribution over noisy copies of the input (Captum NoiseTunnel vargrad).');
