import { distance } from 'fastest-levenshtein';

/** The known name closest to `name`, when it is close enough to be a likely typo. */
export function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  const limit = Math.max(2, Math.floor(name.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/** The `count` known names nearest to `name` (edit distance, case-blind; ties keep the order given), for errors that list what exists. */
export function nearestNames(name: string, known: Iterable<string>, count = 5): string[] {
  return [...new Set(known)]
    .map((candidate) => ({ candidate, d: distance(name.toLowerCase(), candidate.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)
    .slice(0, count)
    .map(({ candidate }) => candidate);
}
