/**
 * `pixel-auc`: Quantus's localisation AUC (Fawcett 2006): the ROC AUC of
 * the map as a per-pixel classifier of the layer map's top region.
 */
import { defineMapMetric, quantisedLevels, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

/**
 * ROC AUC of `m` as a score for "pixel in the top region": the chance that
 * a region pixel scores higher than an outside pixel, ties counting ½ —
 * exactly the area under scikit-learn's roc_curve that Quantus integrates,
 * since its curve steps through every distinct value at once. Null when the
 * region is empty (Quantus: NaN) or covers the whole image (scikit-learn's
 * curve is undefined, NaN).
 */
export function pixelAuc(m: Float64Array, layers: LayerGrid): number | null {
  const positives = layers.topSize;
  const negatives = m.length - positives;
  if (positives === 0 || negatives === 0) return null;
  const levels = quantisedLevels(m);
  if (levels) {
    // A quantised map: count region and outside pixels per level, then outside pixels below each level count 1, at it ½.
    const inside = new Float64Array(256);
    const outside = new Float64Array(256);
    for (let i = 0; i < levels.length; i++) (layers.top[i] ? inside : outside)[levels[i]]++;
    let below = 0;
    let wins = 0;
    for (let level = 0; level < 256; level++) {
      wins += inside[level] * (below + outside[level] / 2);
      below += outside[level];
    }
    return wins / (positives * negatives);
  }
  const pos = new Float64Array(positives);
  const neg = new Float64Array(negatives);
  let p = 0;
  let n = 0;
  for (let i = 0; i < m.length; i++) {
    if (layers.top[i]) pos[p++] = m[i];
    else neg[n++] = m[i];
  }
  pos.sort();
  neg.sort();
  // For each region pixel (ascending): outside pixels strictly below it count 1, equal ones ½.
  let below = 0;
  let upTo = 0;
  let wins = 0;
  for (let i = 0; i < positives; i++) {
    const v = pos[i];
    while (below < negatives && neg[below] < v) below++;
    if (upTo < below) upTo = below;
    while (upTo < negatives && neg[upTo] <= v) upTo++;
    wins += below + (upTo - below) / 2;
  }
  return wins / (positives * negatives);
}

export const pixelAucMetric = defineMapMetric<MapMetricParams>({
  id: 'pixel-auc',
  version: '1',
  description:
    'Quantus AUC (localisation) against the top layer-map region (255) as ground truth. Column `auc`: ROC AUC of the map as a per-pixel classifier of the region ' +
    '(chance that a region pixel scores above an outside one, ties ½); null when the region is empty or the whole image, and (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['auc'],
  score: (m, layers) => ({ auc: pixelAuc(m, layers) }),
});
