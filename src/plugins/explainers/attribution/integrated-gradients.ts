/**
 * Integrated gradients (Sundararajan et al. 2017) as Captum 0.8 computes it:
 * (x − b) · Σₖ wₖ ∇f(b + αₖ(x − b)), with Captum's points αₖ and weights wₖ
 * (approximation_methods.py): Gauss–Legendre on [0, 1] (numpy's leggauss,
 * rescaled), or Riemann sums with steps 1/n (trapezoid: halved at both
 * ends) at α = linspace(0, 1, n) (trapezoid), linspace(0, 1 − 1/n, n)
 * (left), linspace(1/n, 1, n) (right), linspace(1/(2n), 1 − 1/(2n), n)
 * (middle). All steps × images run in chunks of internalBatchSize.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../../core/errors.ts';
import { BASELINE_PARAM, BLUR_SIGMA_PARAM, INTERNAL_BATCH_PARAM, SEED_PARAM, accumulate, baselineFor, defineAttributionExplainer, inChunks, inputGradient } from './attribution-base.ts';

export const IG_METHODS = ['gausslegendre', 'riemann_left', 'riemann_right', 'riemann_middle', 'riemann_trapezoid'] as const;
export type IgMethod = (typeof IG_METHODS)[number];

/** Gauss–Legendre nodes (ascending) and weights on [−1, 1], by Newton's method on Pₙ (float64, to ~1e-15). */
export function gaussLegendre(n: number): { nodes: number[]; weights: number[] } {
  const nodes = new Array<number>(n);
  const weights = new Array<number>(n);
  for (let i = 0; i < Math.ceil(n / 2); i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (n + 0.5));
    let derivative = 0;
    for (let iteration = 0; iteration < 100; iteration++) {
      // P_n(x) and P_{n−1}(x) by the three-term recurrence.
      let p = 1;
      let previous = 0;
      for (let k = 1; k <= n; k++) [previous, p] = [p, ((2 * k - 1) * x * p - (k - 1) * previous) / k];
      derivative = (n * (x * p - previous)) / (x * x - 1);
      const step = p / derivative;
      x -= step;
      if (Math.abs(step) < 1e-16) break;
    }
    const weight = 2 / ((1 - x * x) * derivative * derivative);
    nodes[i] = -x;
    nodes[n - 1 - i] = x;
    weights[i] = weights[n - 1 - i] = weight;
  }
  if (n % 2 === 1) nodes[(n - 1) / 2] = 0;
  return { nodes, weights };
}

const linspace = (start: number, end: number, n: number) => Array.from({ length: n }, (_, i) => (i < n / 2 ? start + ((end - start) * i) / (n - 1) : end - ((end - start) * (n - 1 - i)) / (n - 1)));

/** Captum's integration points α and step sizes for `steps` steps. */
export function integrationPoints(method: IgMethod, steps: number): { alphas: number[]; weights: number[] } {
  if (method === 'gausslegendre') {
    if (steps < 1) throw new UserError('integrated-gradients: Gauss–Legendre needs steps ≥ 1.');
    const { nodes, weights } = gaussLegendre(steps);
    return { alphas: nodes.map((x) => 0.5 * (1 + x)), weights: weights.map((w) => 0.5 * w) };
  }
  if (steps < 2) throw new UserError(`integrated-gradients: ${method} needs steps ≥ 2 (Captum asserts it).`);
  const weights = new Array<number>(steps).fill(1 / steps);
  const n = steps;
  if (method === 'riemann_trapezoid') {
    weights[0] /= 2;
    weights[n - 1] /= 2;
    return { alphas: linspace(0, 1, n), weights };
  }
  if (method === 'riemann_left') return { alphas: linspace(0, 1 - 1 / n, n), weights };
  if (method === 'riemann_right') return { alphas: linspace(1 / n, 1, n), weights };
  return { alphas: linspace(1 / (2 * n), 1 - 1 / (2 * n), n), weights };
}

export const integratedGradients = defineAttributionExplainer({
  id: 'integrated-gradients',
  version: '1',
  description: 'Integrated gradients: (x − baseline) · ∫ ∇f along the straight path, Gauss–Legendre or Riemann (Captum IntegratedGradients).',
  params: {
    steps: { type: 'integer', minimum: 1, default: 50, description: 'Integration steps (Captum n_steps).' },
    method: { enum: [...IG_METHODS], default: 'gausslegendre', description: 'Quadrature, as Captum names it.' },
    baseline: BASELINE_PARAM,
    blurSigma: BLUR_SIGMA_PARAM,
    seed: SEED_PARAM,
    internalBatchSize: INTERNAL_BATCH_PARAM,
  },
  async attribute(batch, params) {
    const { model, input, targets } = batch;
    const { alphas, weights } = integrationPoints(params.method as IgMethod, params.steps as number);
    const baseline = await baselineFor(params.baseline, batch, { seed: params.seed as number, blurSigma: params.blurSigma as number });
    const n = input.shape[0];
    let sum: tf.Tensor2D | undefined;
    try {
      // Rows as Captum orders them: step-major, image-minor.
      await inChunks(alphas.length * n, params.internalBatchSize as number, async (start, count) => {
        const rows = Array.from({ length: count }, (_, r) => start + r);
        const images = rows.map((row) => row % n);
        const scaled = tf.tidy(() => {
          const index = tf.tensor1d(images, 'int32');
          const alpha = tf.tensor4d(rows.map((row) => alphas[Math.floor(row / n)]), [count, 1, 1, 1]);
          const from = tf.gather(baseline, index);
          return tf.add(from, tf.mul(alpha, tf.sub(tf.gather(input, index), from))) as tf.Tensor4D;
        });
        let gradient: tf.Tensor4D;
        try {
          gradient = await inputGradient(model, scaled, images.map((i) => targets[i]));
        } finally {
          scaled.dispose();
        }
        const delta = tf.tidy(() => {
          // Σ over this chunk's rows of wₖ·gradient, per image: [n, rows] × [rows, h·w·c].
          const mix = new Float32Array(n * count);
          rows.forEach((row, r) => (mix[images[r] * count + r] = weights[Math.floor(row / n)]));
          return tf.matMul(tf.tensor2d(mix, [n, count]), tf.reshape(gradient, [count, -1])) as tf.Tensor2D;
        });
        gradient.dispose();
        sum = accumulate(sum, delta);
      });
      return tf.tidy(() => tf.mul(tf.sub(input, baseline), tf.reshape(sum!, input.shape)) as tf.Tensor4D);
    } finally {
      baseline.dispose();
      sum?.dispose();
    }
  },
});
