import stringify from 'safe-stable-stringify';
import type { Json, JsonSchema, Params } from '../plugins/types.ts';
import { createAjv, escapePointer, type ValidateFunction } from './ajv.ts';
import type { ManifestProblem } from './source.ts';

/** One grid axis of a plugin entry: a param and the values it sweeps. */
export interface Axis {
  name: string;
  values: Json[];
  /** JSON pointer (relative to the entry's params) of value i. */
  pointerOf(index: number): string;
}

export interface ExpandedParams {
  params: Params;
  /** The axis values chosen for this variant, by param name. */
  choice: Record<string, Json>;
  /** Maps a pointer inside the variant's params back to where it was written. */
  mapPointer(pointer: string): string;
}

const plainAjv = createAjvWithoutDefaults();
const propertyValidators = new WeakMap<object, ValidateFunction>();

function createAjvWithoutDefaults() {
  const ajv = createAjv();
  (ajv.opts as { useDefaults: boolean }).useDefaults = false;
  return ajv;
}

function acceptsAsValue(propertySchema: JsonSchema, value: unknown): boolean {
  let validate = propertyValidators.get(propertySchema);
  if (!validate) {
    validate = plainAjv.compile(propertySchema);
    propertyValidators.set(propertySchema, validate);
  }
  return validate(value) as boolean;
}

function isGridObject(value: unknown): value is { grid: Json[] } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && Array.isArray((value as { grid?: unknown }).grid);
}

/**
 * Splits params into fixed values and grid axes: `{grid: [...]}` is always an
 * axis; a list is an axis when the param's own schema does not accept a list.
 */
export function findAxes(params: Params, schema: JsonSchema): { fixed: Params; axes: Axis[] } {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const fixed: Params = {};
  const axes: Axis[] = [];
  for (const [name, value] of Object.entries(params)) {
    const key = escapePointer(name);
    if (isGridObject(value)) {
      axes.push({ name, values: value.grid, pointerOf: (i) => `/${key}/grid/${i}` });
    } else if (Array.isArray(value) && properties[name] && !acceptsAsValue(properties[name], value)) {
      axes.push({ name, values: value, pointerOf: (i) => `/${key}/${i}` });
    } else {
      fixed[name] = value;
    }
  }
  return { fixed, axes };
}

/** A problem for every axis without values (pointers relative to `base`, where the entry's params are). */
export function emptyAxisProblems(axes: Axis[], base: string): ManifestProblem[] {
  return axes.filter((axis) => axis.values.length === 0).map((axis) => ({ pointer: `${base}${axis.pointerOf(0).replace(/\/0$/, '')}`, message: `grid axis "${axis.name}" has no values; give at least one` }));
}

/** The cartesian product of the axes, each variant with its params and a way back to the source. */
export function expandAxes(fixed: Params, axes: Axis[]): ExpandedParams[] {
  let combos: number[][] = [[]];
  for (const axis of axes) {
    const next: number[][] = [];
    for (const combo of combos) for (let i = 0; i < axis.values.length; i++) next.push([...combo, i]);
    combos = next;
  }
  return combos.map((combo) => {
    const params: Params = structuredClone(fixed);
    const choice: Record<string, Json> = {};
    axes.forEach((axis, a) => {
      params[axis.name] = structuredClone(axis.values[combo[a]]);
      choice[axis.name] = axis.values[combo[a]];
    });
    const mapPointer = (pointer: string) => {
      for (let a = 0; a < axes.length; a++) {
        const head = `/${escapePointer(axes[a].name)}`;
        if (pointer === head || pointer.startsWith(`${head}/`)) return axes[a].pointerOf(combo[a]) + pointer.slice(head.length);
      }
      return pointer;
    };
    return { params, choice, mapPointer };
  });
}

const isPlainObject = (value: unknown): value is Record<string, Json> => value !== null && typeof value === 'object' && !Array.isArray(value);

/** A short, readable rendering of a param value for variant labels: lists as `a+b`, objects as `{key:value,…}` in written order. */
export function formatValue(value: Json): string {
  if (Array.isArray(value)) return value.length === 0 ? '[]' : value.map(formatValue).join('+');
  if (isPlainObject(value)) return `{${Object.entries(value).map(([key, v]) => `${key}:${formatValue(v)}`).join(',')}}`;
  return String(value);
}

const same = (values: (Json | undefined)[]) => new Set(values.map((v) => stringify(v) ?? 'undefined')).size <= 1;

/**
 * `name=value` of a param that differs among siblings. An object differing
 * in one field is named by its path (`shortcut.size=3`); in several, by
 * those fields only (`shortcut={probability:1,classes:CG}`).
 */
function differencePart(name: string, value: Json | undefined, siblings: (Json | undefined)[]): string {
  if (isPlainObject(value) && siblings.every(isPlainObject)) {
    const objects = siblings as Record<string, Json>[];
    const keys = [...new Set(objects.flatMap((o) => Object.keys(o)))].filter((key) => !same(objects.map((o) => o[key])));
    if (keys.length === 1) return differencePart(`${name}.${keys[0]}`, value[keys[0]], objects.map((o) => o[keys[0]]));
    const shown = keys.filter((key) => key in value);
    if (shown.length > 0) return `${name}={${shown.map((key) => `${key}:${formatValue(value[key])}`).join(',')}}`;
  }
  return `${name}=${formatValue(value ?? null)}`;
}

/**
 * What tells each of a list of variants of one plugin apart from the others:
 * `key=value` parts of the params that differ among them, in the plugin's
 * `propertyOrder`, then by name.
 */
export function distinguishingParts(variants: { params: Params; propertyOrder: string[] }[]): string[][] {
  const order = variants[0]?.propertyOrder ?? [];
  const names = new Set<string>();
  for (const variant of variants) for (const key of Object.keys(variant.params)) names.add(key);
  const differing = [...names].filter((key) => !same(variants.map((v) => v.params[key]))).sort((a, b) => rank(order, a) - rank(order, b) || a.localeCompare(b));
  return variants.map((variant) => differing.map((key) => differencePart(key, variant.params[key], variants.map((v) => v.params[key]))));
}

/**
 * Labels variants that share an id by the params that tell them apart:
 * `occlusion[window=15]`, `occlusion[window=30]`; a lone variant keeps its id.
 */
export function labelVariants<T extends { id: string; name?: string; params: Params; propertyOrder: string[] }>(variants: T[]): string[] {
  return variants.map((variant) => {
    const siblings = variants.filter((other) => other.id === variant.id && other.name === variant.name);
    if (siblings.length === 1) return variant.name ?? variant.id;
    const parts = distinguishingParts(siblings)[siblings.indexOf(variant)];
    return parts.length ? `${variant.name ?? variant.id}[${parts.join(',')}]` : (variant.name ?? variant.id);
  });
}

function rank(order: string[], key: string): number {
  const index = order.indexOf(key);
  return index < 0 ? order.length : index;
}
