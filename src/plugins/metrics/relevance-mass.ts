/**
 * `relevance-mass`: Quantus's RelevanceMassAccuracy (Arras et al. 2021,
 * "Ground Truth Evaluation of Neural Network Explanations with CLEVR-XAI")
 * against the layer map's top region as the ground-truth mask.
 */
import { defineMapMetric, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

/**
 * Share of the map's positive mass inside the top region: Σ_S max(m, 0) /
 * Σ max(m, 0). For maps without negative values (CAMs, and every map with
 * `quantize`) this is Quantus's Σ_S a / Σ a; Quantus sums signed values, so
 * on signed maps it can leave [0, 1], where this stays a share. Null when
 * the top region is empty.
 */
export function relevanceMass(m: Float64Array, layers: LayerGrid): number | null {
  if (layers.topSize === 0) return null;
  let inside = 0;
  let total = 0;
  for (let i = 0; i < m.length; i++) {
    const v = m[i] > 0 ? m[i] : 0;
    total += v;
    if (layers.top[i]) inside += v;
  }
  // total > 0: a normalised map holds 1 at its maximum.
  return inside / total;
}

export const relevanceMassMetric = defineMapMetric<MapMetricParams>({
  id: 'relevance-mass',
  version: '1',
  description:
    'Quantus RelevanceMassAccuracy against the top layer-map region (255) as ground truth. Column `mass`: share of the map\'s positive mass inside the region, Σ_S m⁺ / Σ m⁺; ' +
    'null when the layer map has no top region, and (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['mass'],
  score: (m, layers) => ({ mass: relevanceMass(m, layers) }),
});
