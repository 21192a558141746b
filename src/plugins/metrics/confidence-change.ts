/**
 * `confidence-change`: the study's Drop and Increase in Confidence (DiC, IiC).
 * The model input is perturbed with the normalised map m = map / max(map)
 * (unquantised; negative values count as 0) and the score of the class
 * predicted on the original image is compared before and after:
 *
 * - `perturbation: darken` multiplies the input by m (`cover: unimportant`,
 *   the default: what the map deems unimportant is darkened) or by 1 − m
 *   (`cover: important`), broadcast over the channels with rows and columns
 *   as they are (the study's script transposed them; salgrid does not);
 * - `perturbation: zero` sets to 0 the input pixels of the binary mask m ≥ t
 *   (`cover: important`) or of its complement (`cover: unimportant`), for
 *   each threshold t.
 *
 * Per image: before, after, change = after − before, drop = max(0, −change),
 * relativeDrop = drop / before, increase = after > before. The sweep's
 * aggregate averages them over images: mean drop is DiC, mean relativeDrop
 * × 100 the Grad-CAM++ paper's Average Drop %, mean increase (0/1) the IiC
 * share. With darken + unimportant, change, drop and increase are
 * pytorch-grad-cam's CamMultImageConfidenceChange, DropInConfidence and
 * IncreaseInConfidence (by ClassifierOutputSoftmaxTarget or
 * ClassifierOutputTarget of the predicted class).
 *
 * "Zero" and "darken" act on the network's input, i.e. after normalisation,
 * as pytorch-grad-cam does.
 */
import * as tf from '@tensorflow/tfjs';
import type { Json } from '../../core/plugins/types.ts';
import { UserError } from '../../core/errors.ts';
import { formatThreshold } from '../../core/tensor/map-metric.ts';
import { DEFAULT_THRESHOLDS } from './iou.ts';
import { SCORE_PARAM, classScores, defineModelMetric, scoresFromOutput, unitMaps, type ClassScore, type MetricValues, type ModelMetricBatch } from '../../core/tensor/model-metric.ts';

export interface ConfidenceChangeParams {
  perturbation: 'darken' | 'zero';
  cover: 'unimportant' | 'important';
  thresholds: number[];
  score: ClassScore;
  [key: string]: Json;
}

/** Thresholds of `perturbation: zero`: iou's default (0.95, 0.90, … 0.50). */
export { DEFAULT_THRESHOLDS };

export const CONFIDENCE_DEFAULTS: ConfidenceChangeParams = { perturbation: 'darken', cover: 'unimportant', thresholds: DEFAULT_THRESHOLDS, score: 'softmax' };

/** The per-image values from the score before and after perturbation. */
export function confidenceValues(before: number, after: number): { after: number; change: number; drop: number; relativeDrop: number | null; increase: boolean } {
  const change = after - before;
  const drop = Math.max(0, -change);
  // A relative drop means something only for a positive score (always so for probabilities; logits can be ≤ 0).
  return { after, change, drop, relativeDrop: before > 0 ? drop / before : null, increase: after > before };
}

/** Row columns for these params, in order. */
export function confidenceColumns(params: Partial<ConfidenceChangeParams> = {}): string[] {
  const p = { ...CONFIDENCE_DEFAULTS, ...params };
  const measures = ['after', 'change', 'drop', 'relativeDrop', 'increase'];
  if (p.perturbation === 'darken') return ['before', ...measures];
  return ['before', ...p.thresholds.flatMap((t) => measures.map((m) => `${m}@${formatThreshold(t)}`))];
}

/** input × m (cover unimportant) or input × (1 − m) (cover important); `m` [n, h, w] in [0, 1] broadcast over channels. */
export function darken(input: tf.Tensor4D, m: tf.Tensor3D, cover: ConfidenceChangeParams['cover']): tf.Tensor4D {
  return tf.tidy(() => {
    const factor = cover === 'unimportant' ? m : tf.sub(1, m);
    return tf.mul(input, tf.expandDims(factor, 3)) as tf.Tensor4D;
  });
}

/** The input with the pixels of m ≥ t (cover important) or of m < t (cover unimportant) set to 0. */
export function zeroOut(input: tf.Tensor4D, m: tf.Tensor3D, t: number, cover: ConfidenceChangeParams['cover']): tf.Tensor4D {
  return tf.tidy(() => {
    const important = tf.greaterEqual(m, t);
    const keep = cover === 'important' ? tf.logicalNot(important) : important;
    return tf.mul(input, tf.expandDims(tf.cast(keep, 'float32'), 3)) as tf.Tensor4D;
  });
}

function checkParams(p: ConfidenceChangeParams): void {
  if (p.perturbation === 'zero' && p.thresholds.length === 0) throw new UserError('confidence-change with perturbation: zero needs at least one threshold.');
  if (new Set(p.thresholds.map(formatThreshold)).size !== p.thresholds.length) throw new UserError(`confidence-change thresholds must differ: ${JSON.stringify(p.thresholds)} repeats one.`);
}

/** The measure on one batch (see the module comment): one row per image. */
export async function scoreConfidence(batch: Pick<ModelMetricBatch, 'model' | 'input' | 'maps' | 'output' | 'predicted'>, partial: Partial<ConfidenceChangeParams> = {}): Promise<MetricValues[]> {
  const p = { ...CONFIDENCE_DEFAULTS, ...partial } as ConfidenceChangeParams;
  checkParams(p);
  const { model, input, maps, output, predicted } = batch;
  const n = input.shape[0];
  // The perturbed inputs are scored the same way (forward, then scoresFromOutput), so an unchanged input scores exactly the same.
  const before = scoresFromOutput(model, output, predicted, p.score);
  const rows: MetricValues[] = Array.from({ length: n }, (_, i) => ({ before: before[i] }));
  const m = unitMaps(maps);
  try {
    if (p.perturbation === 'darken') {
      const perturbed = darken(input, m, p.cover);
      let after: Float32Array;
      try {
        after = await classScores(model, perturbed, predicted, p.score);
      } finally {
        perturbed.dispose();
      }
      rows.forEach((row, i) => Object.assign(row, confidenceValues(before[i], after[i])));
      return rows;
    }
    // All thresholds in one set of forward passes: [thresholds × n] perturbed inputs.
    const perturbed = tf.tidy(() => tf.concat(p.thresholds.map((t) => zeroOut(input, m, t, p.cover)), 0) as tf.Tensor4D);
    let after: Float32Array;
    try {
      after = await classScores(model, perturbed, p.thresholds.flatMap(() => predicted), p.score);
    } finally {
      perturbed.dispose();
    }
    p.thresholds.forEach((t, k) => {
      const suffix = `@${formatThreshold(t)}`;
      rows.forEach((row, i) => {
        for (const [name, value] of Object.entries(confidenceValues(before[i], after[k * n + i]))) row[`${name}${suffix}`] = value;
      });
    });
    return rows;
  } finally {
    m.dispose();
  }
}

export const confidenceChange = defineModelMetric<ConfidenceChangeParams>({
  id: 'confidence-change',
  version: '1',
  description: "Drop / Increase in Confidence (the study's DiC, IiC; pytorch-grad-cam CamMultImageConfidenceChange) when the input is darkened by the map or thresholded pixels are zeroed.",
  params: {
    properties: {
      perturbation: {
        enum: ['darken', 'zero'],
        default: CONFIDENCE_DEFAULTS.perturbation,
        description: 'darken: multiply the input by m = map / max(map) (or by 1 − m); zero: set the pixels of the mask m ≥ t (or its complement) to 0, for each threshold t.',
      },
      cover: {
        enum: ['unimportant', 'important'],
        default: CONFIDENCE_DEFAULTS.cover,
        description: 'Which part is perturbed: unimportant (darken: × m; zero: pixels with m < t) — pytorch-grad-cam’s DiC/IiC — or important (darken: × (1 − m); zero: pixels with m ≥ t).',
      },
      thresholds: {
        type: 'array',
        items: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
        minItems: 1,
        default: DEFAULT_THRESHOLDS,
        description: 'Thresholds t of perturbation: zero (columns after@0.95, drop@0.95, …); unused by darken.',
      },
      score: SCORE_PARAM,
    },
  },
  score: (batch, params) => scoreConfidence(batch, params),
});
