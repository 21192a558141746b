/**
 * `hit-rate`: the seed study's Hit Rate (SLM_GET_MAX.m). Does the peak of the
 * saliency map fall on the important layers of the expert layer map?
 */
import { defineMapMetric, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

export interface HitRate {
  /** Mean level score over the peak pixels (default levels: +3 … −1). */
  graded: number | null;
  /** Mean over the peak pixels of +1 in the top region, −1 outside the layers, 0 on the other bands. */
  binary: number | null;
  /** How many pixels hold the peak. */
  peakPixels: number;
}

/**
 * Hit Rate of one normalised map `m` (max 1) on its layer map. Peak pixels
 * are those where floor(255·m) = 255, i.e. every pixel holding the maximum.
 */
export function hitRate(m: Float64Array, layers: LayerGrid): HitRate {
  let peaks = 0;
  let graded = 0;
  let binary = 0;
  for (let i = 0; i < m.length; i++) {
    if (Math.floor(255 * m[i]) !== 255) continue;
    peaks++;
    graded += layers.score[i];
    binary += layers.top[i] ? 1 : layers.outside[i] ? -1 : 0;
  }
  return { graded: peaks > 0 ? graded / peaks : null, binary: peaks > 0 ? binary / peaks : null, peakPixels: peaks };
}

export const hitRateMetric = defineMapMetric<MapMetricParams>({
  id: 'hit-rate',
  version: '1',
  description:
    'The study\'s Hit Rate: the layer-map level under the saliency peak. Peak pixels P: floor(255·m) = 255 with m = map / max(map) (every pixel holding the maximum). ' +
    'Columns: `graded` = mean level score over P (+3 at 255, +2 at 128, +1 at 64, 0 at 32, −1 elsewhere with the default levels); ' +
    '`binary` = mean over P of +1 in the top region, −1 outside the layers, 0 on the other bands; `peakPixels` = |P|. ' +
    'Null (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['graded', 'binary', 'peakPixels'],
  score: (m, layers) => ({ ...hitRate(m, layers) }),
});
