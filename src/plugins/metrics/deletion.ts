/** `deletion`: Xplique's Deletion (RISE) — the predicted class's score as the most important pixels are removed to a baseline; lower AUC is better. */
import { causalMetric } from './causal-fidelity.ts';

export const deletion = causalMetric(
  'deletion',
  'Deletion (Xplique / RISE): the predicted class’s score as pixels are removed to a baseline in decreasing map order; AUC by trapezoid (lower is better) and the curve.',
);
