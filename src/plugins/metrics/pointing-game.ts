/**
 * `pointing-game`: Quantus's PointingGame (Zhang et al. 2018, "Top-Down
 * Neural Attention by Excitation Backprop") against the layer map's top
 * region as the ground-truth mask.
 */
import { defineMapMetric, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

/**
 * 1 when a peak pixel of `m` (floor(255·m) = 255: the pixels holding the
 * maximum, as Quantus's `a == a.max()`) lies in the top region, else 0;
 * null when the top region is empty (Quantus means NaN there).
 */
export function pointingGame(m: Float64Array, layers: LayerGrid): number | null {
  if (layers.topSize === 0) return null;
  for (let i = 0; i < m.length; i++) if (layers.top[i] && Math.floor(255 * m[i]) === 255) return 1;
  return 0;
}

export const pointingGameMetric = defineMapMetric<MapMetricParams>({
  id: 'pointing-game',
  version: '1',
  description:
    'Quantus PointingGame against the top layer-map region (255) as ground truth. Column `hit`: 1 when a pixel holding the map\'s maximum lies in the region, else 0; ' +
    'null when the layer map has no top region, and (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['hit'],
  score: (m, layers) => ({ hit: pointingGame(m, layers) }),
});
