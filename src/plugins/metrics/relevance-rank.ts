/**
 * `relevance-rank`: Quantus's RelevanceRankAccuracy (Arras et al. 2021)
 * against the layer map's top region as the ground-truth mask.
 */
import { defineMapMetric, quantisedLevels, type LayerGrid, type MapMetricParams } from '../../core/tensor/map-metric.ts';

/**
 * Share of the K = |S| highest pixels of `m` that lie in the top region S.
 * Quantus takes the first K of `argsort(-a)`, so pixels tied at the K-th
 * value enter in whatever order numpy's (unstable) sort leaves them; a
 * quantised map has many such ties. Here the tied pixels share the remaining
 * places in proportion — the mean over every order of the ties — so the
 * value is the same for any tie order and never favours the image's top
 * rows. Without ties at the K-th value it is Quantus's value exactly.
 * Null when the top region is empty.
 */
export function relevanceRank(m: Float64Array, layers: LayerGrid): number | null {
  const k = layers.topSize;
  if (k === 0) return null;
  const kth = kthLargest(m, k);
  let above = 0;
  let aboveInside = 0;
  let tied = 0;
  let tiedInside = 0;
  for (let i = 0; i < m.length; i++) {
    if (m[i] > kth) {
      above++;
      aboveInside += layers.top[i];
    } else if (m[i] === kth) {
      tied++;
      tiedInside += layers.top[i];
    }
  }
  const places = k - above;
  return (aboveInside + (places * tiedInside) / tied) / k;
}

/** The k-th largest value of `m` (1-based): by counting levels on a quantised map, else by quickselect on a copy. */
export function kthLargest(m: Float64Array, k: number): number {
  const levels = quantisedLevels(m);
  if (levels) {
    const counts = new Float64Array(256);
    for (let i = 0; i < levels.length; i++) counts[levels[i]]++;
    let seen = 0;
    for (let level = 255; level > 0; level--) {
      seen += counts[level];
      if (seen >= k) return level / 255;
    }
    return 0;
  }
  return select(Float64Array.from(m), m.length - k);
}

/** The value at `index` of `a` in ascending order (Hoare's quickselect; reorders `a`). */
function select(a: Float64Array, index: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    const x = a[lo];
    const y = a[(lo + hi) >> 1];
    const z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    // Now a[lo..j] ≤ pivot ≤ a[i..hi], and everything between j and i equals the pivot.
    if (index <= j) hi = j;
    else if (index >= i) lo = i;
    else return pivot;
  }
  return a[lo];
}

export const relevanceRankMetric = defineMapMetric<MapMetricParams>({
  id: 'relevance-rank',
  version: '1',
  description:
    'Quantus RelevanceRankAccuracy against the top layer-map region S (255) as ground truth. Column `rank`: share of the |S| highest map pixels that lie in S ' +
    '(pixels tied at the |S|-th value share the remaining places in proportion, the mean over tie orders); ' +
    'null when the layer map has no top region, and (with one warning per task) for images without a layer map and maps with no positive value.',
  params: {},
  columns: () => ['rank'],
  score: (m, layers) => ({ rank: relevanceRank(m, layers) }),
});
