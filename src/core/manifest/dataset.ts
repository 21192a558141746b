/**
 * The dataset as a grid axis: grid axes in `dataset.params` (a list where the
 * param takes no list, or `{ grid: [...] }`) make dataset variants, each run
 * through the whole sweep. Variants are labelled by `dataset.names` (in grid
 * order) or else by the params that tell them apart (`perClass=20`,
 * `shortcut={probability:1,classes:CG}`); one variant is the plain dataset of
 * a manifest without axes, labelled by its source.
 */
import stringify from 'safe-stable-stringify';
import type { Registry } from '../plugins/registry.ts';
import type { JsonSchema, Params } from '../plugins/types.ts';
import { problemsFromAjv, type ValidateFunction } from './ajv.ts';
import { distinguishingParts, emptyAxisProblems, expandAxes, findAxes } from './grid.ts';
import type { ManifestProblem } from './source.ts';

/** One dataset variant: the dataset plugin's fully resolved params and the label that names the variant in tables, charts and verdicts. */
export interface DatasetVariant {
  label: string;
  params: Params;
}

export interface ResolvedDataset {
  source: string;
  version: string;
  imageSize: [number, number];
  /** One entry without grid axes; several make the dataset an axis of the grid. */
  variants: DatasetVariant[];
}

interface DatasetSection {
  source?: unknown;
  params?: Params;
  names?: unknown;
  imageSize?: [number, number];
}

/**
 * Expands `dataset` into its variants, validating each variant's params
 * against the plugin's schema (errors point at where each value was written).
 * `problems` collects the mistakes; the result is only meaningful without any.
 */
export function expandDataset(section: DatasetSection, registry: Registry, validatorFor: (schema: JsonSchema) => ValidateFunction, problems: ManifestProblem[]): ResolvedDataset {
  const source = typeof section.source === 'string' ? section.source : '';
  const imageSize = section.imageSize as [number, number];
  if (!source) return { source, version: '', imageSize, variants: [] };
  if (!registry.has('dataset', source)) {
    problems.push({ pointer: '/dataset/source', message: registry.unknownMessage('dataset', source) });
    return { source, version: '', imageSize, variants: [] };
  }
  const plugin = registry.get('dataset', source);
  const params = (section.params ??= {});
  const { fixed, axes } = findAxes(params, plugin.params);
  problems.push(...emptyAxisProblems(axes, '/dataset/params'));
  const validate = validatorFor(plugin.params);
  const seen = new Set<string>();
  const expanded = expandAxes(fixed, axes).map((variant) => {
    if (!validate(variant.params)) {
      for (const problem of problemsFromAjv(validate.errors, '/dataset/params', variant.mapPointer)) {
        const id = `${problem.pointer}|${problem.message}`;
        if (!seen.has(id)) problems.push(problem);
        seen.add(id);
      }
    }
    return variant.params;
  });
  checkRepeats(expanded, problems);
  const labels = variantLabels(expanded, section.names, Object.keys((plugin.params.properties ?? {}) as object), source, problems);
  if (axes.length === 0) {
    // Defaults filled in place, so the resolved manifest shows them as before the dataset could be an axis.
    Object.assign(params, expanded[0]);
    return { source, version: plugin.version, imageSize, variants: [{ label: labels[0], params }] };
  }
  return { source, version: plugin.version, imageSize, variants: expanded.map((p, i) => ({ label: labels[i], params: p })) };
}

/** `dataset.names` in grid order; without, what tells the variants apart (a lone variant: the source). */
function variantLabels(variants: Params[], names: unknown, propertyOrder: string[], source: string, problems: ManifestProblem[]): string[] {
  if (Array.isArray(names)) {
    if (names.length !== variants.length) {
      const axes = variants.length === 1 ? 'dataset.params has no grid axis' : `the grid axes of dataset.params make ${variants.length}`;
      problems.push({
        pointer: '/dataset/names',
        message: `${names.length} name${names.length === 1 ? '' : 's'} for ${variants.length} dataset variant${variants.length === 1 ? '' : 's'} (${axes}); give one name per variant, in grid order`,
      });
    }
    return variants.map((_, i) => String(names[i] ?? `${source}-${i + 1}`));
  }
  if (variants.length === 1) return [source];
  return distinguishingParts(variants.map((params) => ({ params, propertyOrder }))).map((parts) => parts.join(',') || source);
}

/** Two variants with the same params would be the same tasks twice. */
function checkRepeats(variants: Params[], problems: ManifestProblem[]): void {
  const first = new Map<string, number>();
  variants.forEach((params, i) => {
    const text = stringify(params) ?? '';
    const earlier = first.get(text);
    if (earlier !== undefined) problems.push({ pointer: '/dataset/params', message: `dataset variants ${earlier + 1} and ${i + 1} have the same params; remove the repeated grid value` });
    else first.set(text, i);
  });
}
