/** `insertion`: Xplique's Insertion (RISE) — the predicted class's score as the most important pixels are added to a baseline; higher AUC is better. */
import { causalMetric } from './causal-fidelity.ts';

export const insertion = causalMetric(
  'insertion',
  'Insertion (Xplique / RISE): the predicted class’s score as pixels are added to a baseline in decreasing map order; AUC by trapezoid (higher is better) and the curve.',
);
