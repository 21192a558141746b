import Ajv2020 from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { closest } from './suggest.ts';
import type { ManifestProblem } from './source.ts';

export type { ErrorObject, ValidateFunction };

/** An ajv instance for draft 2020-12 that fills in defaults and reports every error at once. */
export function createAjv(): InstanceType<typeof Ajv2020.default> {
  const ajv = new Ajv2020.default({ allErrors: true, useDefaults: true, strict: false, allowUnionTypes: true, verbose: true });
  addFormats.default(ajv);
  return ajv;
}

/** Turns ajv errors into problems with JSON pointers relative to `base`, each with a hint. */
export function problemsFromAjv(errors: ErrorObject[] | null | undefined, base = '', mapPointer: (p: string) => string = (p) => p): ManifestProblem[] {
  const problems: ManifestProblem[] = [];
  const seen = new Set<string>();
  for (const error of errors ?? []) {
    // Branch bookkeeping of if/then/anyOf: the branch's own errors say more.
    if (error.keyword === 'if' || error.keyword === 'anyOf' || error.keyword === 'oneOf') continue;
    if (error.schemaPath.includes('/else/') && errors!.some((e) => e.instancePath === error.instancePath && e.schemaPath.includes('/then/'))) continue;
    const problem = describe(error, base, mapPointer);
    const id = `${problem.pointer}|${problem.message}`;
    if (!seen.has(id)) {
      seen.add(id);
      problems.push(problem);
    }
  }
  return problems;
}

function describe(error: ErrorObject, base: string, mapPointer: (p: string) => string): ManifestProblem {
  const pointer = base + mapPointer(error.instancePath);
  const params = error.params as Record<string, unknown>;
  const allowedProps = (schema: unknown) => Object.keys(((schema as { properties?: object })?.properties) ?? {});
  switch (error.keyword) {
    case 'additionalProperties': {
      const name = String(params.additionalProperty);
      const allowed = allowedProps(error.parentSchema);
      const guess = closest(name, allowed);
      return {
        pointer: `${pointer}/${escapePointer(name)}`,
        at: 'key',
        message: `unknown field "${name}"${guess ? `; did you mean "${guess}"?` : ''} (allowed: ${allowed.join(', ') || 'none'})`,
      };
    }
    case 'required':
      return { pointer, at: pointer === '' ? 'value' : 'key', message: `missing required field "${params.missingProperty}"; add it` };
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map((v) => JSON.stringify(v));
      return { pointer, message: `must be one of ${allowed.join(', ')}, got ${JSON.stringify(error.data)}` };
    }
    case 'const':
      return { pointer, message: `must be ${JSON.stringify(params.allowedValue)}, got ${JSON.stringify(error.data)}` };
    case 'type':
      return { pointer, message: `must be ${article(String(params.type))}, got ${JSON.stringify(error.data)}` };
    default:
      return { pointer, message: `${error.message ?? 'is invalid'}${error.data !== undefined && typeof error.data !== 'object' ? `, got ${JSON.stringify(error.data)}` : ''}` };
  }
}

function article(type: string): string {
  return type
    .split(',')
    .map((t) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`))
    .join(' or ');
}

export function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}
