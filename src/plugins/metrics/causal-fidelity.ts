/**
 * What `deletion` and `insertion` share: Xplique's CausalFidelity (after
 * Petsiuk et al., RISE, 2018). The pixels are ranked by decreasing map value
 * (all channels of a pixel together; equal values in row-major order), and
 * over `steps` steps the first k_i = ⌊i · K / steps⌋ of them (K = all pixels,
 * or ⌊maxPerturbed · pixels⌋) are taken from the end state into the start
 * state: deletion goes from the input to the baseline, insertion from the
 * baseline to the input. The score of the class predicted on the original
 * input is taken at every step (steps + 1 points, k_0 = 0) and the area
 * under that curve by the trapezoid rule on an x axis of [0, 1]:
 * auc = mean over i of (s_i + s_{i+1}) / 2.
 *
 * Baselines act on the network's input (after normalisation): `zero` (0,
 * Xplique's default), or `blur`, the input blurred with RISE's Gaussian
 * kernel (11 × 11, σ = 5, zero padding), RISE's insertion baseline.
 */
import * as tf from '@tensorflow/tfjs';
import type { Json } from '../../core/plugins/types.ts';
import { FORWARD_CHUNK, SCORE_PARAM, classScores, defineModelMetric, type ClassScore, type MetricValues, type ModelMetric, type ModelMetricBatch } from '../../core/tensor/model-metric.ts';

export type CausalMode = 'deletion' | 'insertion';

export interface CausalParams {
  steps: number;
  baseline: 'zero' | 'blur';
  maxPerturbed: number;
  score: ClassScore;
  [key: string]: Json;
}

export const CAUSAL_DEFAULTS: CausalParams = { steps: 10, baseline: 'zero', maxPerturbed: 1, score: 'softmax' };

/** Pixels flipped at each step: Xplique's np.linspace(0, K, steps + 1) cast to int32 (truncated), with the last exactly K. */
export function stepCounts(pixels: number, steps: number, maxPerturbed = 1): number[] {
  const total = Math.floor(pixels * maxPerturbed);
  const delta = total / steps;
  return Array.from({ length: steps + 1 }, (_, i) => (i === steps ? total : Math.trunc(i * delta)));
}

/** Column name of step i of `steps`: the nominal fraction of pixels perturbed, `score@0`, `score@0.1`, … `score@1`. */
export function stepColumn(i: number, steps: number): string {
  return `score@${Number((i / steps).toFixed(4))}`;
}

export function causalColumns(params: Partial<CausalParams> = {}): string[] {
  const { steps } = { ...CAUSAL_DEFAULTS, ...params };
  return ['auc', ...Array.from({ length: steps + 1 }, (_, i) => stepColumn(i, steps))];
}

/** Trapezoid area under a curve of equally spaced points on [0, 1]. */
export function trapezoidAuc(curve: readonly number[]): number {
  let sum = 0;
  for (let i = 0; i + 1 < curve.length; i++) sum += (curve[i] + curve[i + 1]) / 2;
  return sum / (curve.length - 1);
}

/** Rank of each pixel by decreasing value (0 = the highest); equal values keep row-major order. */
export function pixelRanks(map: ArrayLike<number>): Float32Array {
  const order = Array.from({ length: map.length }, (_, i) => i);
  order.sort((a, b) => map[b] - map[a] || a - b);
  const ranks = new Float32Array(map.length);
  order.forEach((pixel, rank) => (ranks[pixel] = rank));
  return ranks;
}

/** RISE's blur: a normalised 11 × 11 Gaussian of σ = 5, per channel, zero padding. */
export function blurBaseline(input: tf.Tensor4D, size = 11, sigma = 5): tf.Tensor4D {
  return tf.tidy(() => {
    const half = (size - 1) / 2;
    const g = Array.from({ length: size }, (_, i) => Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)));
    const total = g.reduce((a, b) => a + b, 0) ** 2;
    const channels = input.shape[3];
    const kernel = new Float32Array(size * size * channels);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) for (let c = 0; c < channels; c++) kernel[(y * size + x) * channels + c] = (g[y] * g[x]) / total;
    return tf.depthwiseConv2d(input, tf.tensor4d(kernel, [size, size, channels, 1]), 1, 'same') as tf.Tensor4D;
  });
}

/** The curve and its AUC for each image of the batch. */
export async function scoreCausal(mode: CausalMode, batch: Pick<ModelMetricBatch, 'model' | 'input' | 'maps' | 'predicted'>, partial: Partial<CausalParams> = {}): Promise<MetricValues[]> {
  const p = { ...CAUSAL_DEFAULTS, ...partial } as CausalParams;
  const { model, input, maps, predicted } = batch;
  const [n, h, w] = input.shape;
  const counts = stepCounts(h * w, p.steps, p.maxPerturbed);
  const mapData = maps.dataSync() as Float32Array;
  const baseline = p.baseline === 'blur' ? blurBaseline(input) : tf.zerosLike(input);
  const columns = causalColumns(p).slice(1);
  const rows: MetricValues[] = [];
  // Images per forward group: all steps of an image go together, about FORWARD_CHUNK inputs at a time.
  const group = Math.max(1, Math.floor(FORWARD_CHUNK / counts.length));
  try {
    for (let start = 0; start < n; start += group) {
      const images = Array.from({ length: Math.min(group, n - start) }, (_, k) => start + k);
      const perturbed = tf.tidy(() => {
        const thresholds = tf.tensor1d(counts, 'float32').reshape([counts.length, 1, 1]);
        return tf.concat(
          images.map((i) => {
            const ranks = tf.tensor2d(pixelRanks(mapData.subarray(i * h * w, (i + 1) * h * w)), [h, w]);
            // flipped[s, y, x] = 1 where the pixel is among the first counts[s].
            const flipped = tf.expandDims(tf.cast(tf.less(ranks, thresholds), 'float32'), 3);
            const x = tf.slice(input, [i, 0, 0, 0], [1, -1, -1, -1]);
            const b = tf.slice(baseline, [i, 0, 0, 0], [1, -1, -1, -1]);
            const [from, to] = mode === 'deletion' ? [x, b] : [b, x];
            return tf.add(tf.mul(from, tf.sub(1, flipped)), tf.mul(to, flipped));
          }),
          0,
        ) as tf.Tensor4D;
      });
      let scores: Float32Array;
      try {
        scores = await classScores(model, perturbed, images.flatMap((i) => counts.map(() => predicted[i])), p.score);
      } finally {
        perturbed.dispose();
      }
      images.forEach((_, k) => {
        const curve = Array.from(scores.subarray(k * counts.length, (k + 1) * counts.length));
        rows.push({ auc: trapezoidAuc(curve), ...Object.fromEntries(columns.map((column, s) => [column, curve[s]])) });
      });
    }
    return rows;
  } finally {
    baseline.dispose();
  }
}

/** The `deletion` or `insertion` plugin. */
export function causalMetric(mode: CausalMode, description: string): ModelMetric<CausalParams> {
  return defineModelMetric<CausalParams>({
    id: mode,
    version: '1',
    description,
    params: {
      properties: {
        steps: { type: 'integer', minimum: 1, maximum: 1000, default: CAUSAL_DEFAULTS.steps, description: 'Steps from the start state to the end state: the curve has steps + 1 points (columns score@0 … score@1).' },
        baseline: {
          enum: ['zero', 'blur'],
          default: CAUSAL_DEFAULTS.baseline,
          description: `What ${mode === 'deletion' ? 'removed pixels become' : 'the image starts from'}: zero (0 in the network's input, Xplique's default) or blur (RISE's Gaussian blur of the input, 11×11, σ = 5).`,
        },
        maxPerturbed: { type: 'number', exclusiveMinimum: 0, maximum: 1, default: CAUSAL_DEFAULTS.maxPerturbed, description: 'Share of the pixels perturbed at the last step (Xplique max_percentage_perturbed).' },
        score: SCORE_PARAM,
      },
    },
    score: (batch, params) => scoreCausal(mode, batch, params),
  });
}
