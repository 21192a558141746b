import stringify from 'safe-stable-stringify';
import type { Json, JsonSchema, Params } from '../plugins/types.ts';
import { createAjv, escapePointer, type ValidateFunction } from './ajv.ts';

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

/** A short, readable rendering of a param value for variant labels. */
export function formatValue(value: Json): string {
  if (Array.isArray(value)) return value.map(formatValue).join('+');
  if (value !== null && typeof value === 'object') return stringify(value) ?? '';
  return String(value);
}

/**
 * Labels variants that share an id by the params that tell them apart:
 * `occlusion[window=15]`, `occlusion[window=30]`; a lone variant keeps its id.
 */
export function labelVariants<T extends { id: string; name?: string; params: Params; propertyOrder: string[] }>(variants: T[]): string[] {
  return variants.map((variant) => {
    const siblings = variants.filter((other) => other.id === variant.id && other.name === variant.name);
    if (siblings.length === 1) return variant.name ?? variant.id;
    const names = new Set<string>();
    for (const sibling of siblings) for (const key of Object.keys(sibling.params)) names.add(key);
    const differing = [...names]
      .filter((key) => new Set(siblings.map((s) => stringify(s.params[key]) ?? 'undefined')).size > 1)
      .sort((a, b) => rank(variant.propertyOrder, a) - rank(variant.propertyOrder, b) || a.localeCompare(b));
    const parts = differing.map((key) => `${key}=${formatValue(variant.params[key] ?? null)}`);
    return parts.length ? `${variant.name ?? variant.id}[${parts.join(',')}]` : (variant.name ?? variant.id);
  });
}

function rank(order: string[], key: string): number {
  const index = order.indexOf(key);
  return index < 0 ? order.length : index;
}
