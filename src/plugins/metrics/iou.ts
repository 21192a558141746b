/**
 * `iou`: the seed study's masks thresholded from the heat map against each
 * level of the layer map (SLM_VS_HMMASK.m): Jaccard index per threshold and level.
 */
import { UserError } from '../../core/errors.ts';
import { defineMapMetric, formatThreshold, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

export interface IouParams extends MapMetricParams {
  thresholds: number[];
}

/** The study's thresholds, written as literals so they are the same doubles as Python's 0.95, 0.9, … */
export const DEFAULT_THRESHOLDS = [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5];

/** Column of a threshold and region: `iou@0.95:255`, `iou@0.50:other`. */
export function iouColumn(threshold: number, region: string): string {
  return `iou@${formatThreshold(threshold)}:${region}`;
}

/**
 * IoU of the mask m ≥ t with each region of the layer map, per threshold:
 * result[t][r] for `thresholds[t]` and `layers.levels.regions[r]`; null
 * where the union is empty.
 */
export function iou(m: Float64Array, layers: LayerGrid, thresholds: readonly number[]): (number | null)[][] {
  const regions = layers.levels.regions.length;
  // One pass: each pixel falls in the bucket of the highest threshold it reaches (thresholds by
  // decreasing value; bucket T: none), per region; a threshold's mask is its bucket and all above.
  const order = thresholds.map((t, i) => ({ t, i })).sort((a, b) => b.t - a.t);
  const T = order.length;
  const buckets = new Float64Array((T + 1) * regions);
  for (let p = 0; p < m.length; p++) {
    const v = m[p];
    let b = 0;
    while (b < T && order[b].t > v) b++;
    buckets[b * regions + layers.region[p]]++;
  }
  const result: (number | null)[][] = new Array(T);
  const intersection = new Float64Array(regions);
  let mask = 0;
  for (let b = 0; b < T; b++) {
    for (let r = 0; r < regions; r++) {
      intersection[r] += buckets[b * regions + r];
      mask += buckets[b * regions + r];
    }
    result[order[b].i] = Array.from(intersection, (inter, r) => {
      const union = mask + layers.regionSizes[r] - inter;
      return union > 0 ? inter / union : null;
    });
  }
  return result;
}

export const iouMetric = defineMapMetric<IouParams>({
  id: 'iou',
  version: '1',
  description:
    'The study\'s masks m ≥ t (m = floor(255·map/max) / 255) against each layer-map level: IoU (Jaccard) per threshold t and region. ' +
    'Columns `iou@<t>:<region>`: t with two decimals (more only where needed), region = the pixel value of a level (255, 128, 64, 32 by default) or `other` (every value not listed in levels), ' +
    'e.g. `iou@0.95:255`, `iou@0.50:other`; thresholds in the order given, regions by decreasing score. Null where the union is empty.',
  params: {
    thresholds: {
      type: 'array',
      items: { type: 'number', minimum: 0, maximum: 1 },
      minItems: 1,
      uniqueItems: true,
      default: DEFAULT_THRESHOLDS,
      description: 'Thresholds t of the masks m ≥ t.',
    },
  },
  check: (params) => {
    if (!Array.isArray(params.thresholds) || params.thresholds.length === 0 || !params.thresholds.every((t) => typeof t === 'number' && t >= 0 && t <= 1)) {
      throw new UserError(`iou thresholds must be a non-empty list of numbers in [0, 1], not ${JSON.stringify(params.thresholds)}.`);
    }
    const names = params.thresholds.map(formatThreshold);
    if (new Set(names).size !== names.length) throw new UserError(`iou thresholds must differ, got ${JSON.stringify(params.thresholds)}.`);
  },
  columns: (params, levels) => params.thresholds.flatMap((t) => levels.regions.map((r) => iouColumn(t, r))),
  score: (m, layers, params) => {
    const values = iou(m, layers, params.thresholds);
    const row: Record<string, number | null> = {};
    params.thresholds.forEach((t, ti) => layers.levels.regions.forEach((r, ri) => (row[iouColumn(t, r)] = values[ti][ri])));
    return row;
  },
});
