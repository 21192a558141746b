/**
 * `layer-coverage`: the seed study's coverage of the layer map by the heat
 * map (SLM_VS_HM.m): how much of the map's value lies on each region.
 */
import { defineMapMetric, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

export interface LayerCoverage {
  /** Mean of m over the top region (level 255); null when the layer map has none. */
  top: number | null;
  /** Mean of m outside the layers; null when there is no such pixel. */
  background: number | null;
  /** Σ w·m / (N255 + N128 + N64), w = 1, ½, ¼ on those levels; null when none of them is present. */
  weighted: number | null;
}

/** Layer coverage of one normalised map `m` on its layer map. */
export function layerCoverage(m: Float64Array, layers: LayerGrid): LayerCoverage {
  let top = 0;
  let background = 0;
  let weighted = 0;
  let positive = 0;
  const { levels } = layers;
  const weights = [...levels.scores, levels.otherScore].map((score) => levels.weight(score));
  for (let i = 0; i < m.length; i++) {
    if (layers.top[i]) top += m[i];
    if (layers.outside[i]) background += m[i];
    const w = weights[layers.region[i]];
    if (w > 0) {
      weighted += w * m[i];
      positive++;
    }
  }
  return {
    top: layers.topSize > 0 ? top / layers.topSize : null,
    background: layers.outsideSize > 0 ? background / layers.outsideSize : null,
    weighted: positive > 0 ? weighted / positive : null,
  };
}

export const layerCoverageMetric = defineMapMetric<MapMetricParams>({
  id: 'layer-coverage',
  version: '1',
  description:
    'The study\'s layer coverage, with m = floor(255·map/max) / 255. Columns: `top` = mean of m over the top region (255); ' +
    '`background` = mean of m outside the layers; `weighted` = Σ(w·m) / (N255 + N128 + N64) with w = 1, ½, ¼ on those levels. ' +
    'Null where the region is empty, and (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['top', 'background', 'weighted'],
  score: (m, layers) => ({ ...layerCoverage(m, layers) }),
});
