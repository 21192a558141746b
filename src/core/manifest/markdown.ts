import type { Registry } from '../plugins/registry.ts';
import type { JsonSchema, PluginKind } from '../plugins/types.ts';
import { manifestSchema } from './schema.ts';

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function typeOf(schema: JsonSchema): string {
  if (schema.enum) return (schema.enum as unknown[]).map((v) => `\`${JSON.stringify(v)}\``).join(' \\| ');
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  if (schema.anyOf) return (schema.anyOf as JsonSchema[]).map(typeOf).join(' \\| ');
  const type = schema.type;
  if (type === 'array' && schema.items) return `${typeOf(schema.items as JsonSchema)}[]`;
  return Array.isArray(type) ? type.join(' \\| ') : String(type ?? 'any');
}

function rows(schema: JsonSchema, prefix: string, out: string[]): void {
  const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((schema.required ?? []) as string[]);
  for (const [name, property] of Object.entries(properties)) {
    if (name === '$schema') continue;
    const path = prefix ? `${prefix}.${name}` : name;
    const fallback = property.default !== undefined ? `\`${JSON.stringify(property.default)}\`` : required.has(name) ? 'required' : '';
    out.push(`| \`${path}\` | ${typeOf(property)} | ${fallback} | ${cell(String(property.description ?? ''))} |`);
    if (property.type === 'object' && property.properties) rows(property, path, out);
    // A list of plugin entries: the fields of an entry written as a mapping ({ id, params, … }).
    const entry = (property.items as JsonSchema | undefined)?.else as JsonSchema | undefined;
    if (property.type === 'array' && entry?.properties) rows(entry, `${path}[]`, out);
  }
}

function table(schema: JsonSchema, prefix = ''): string {
  const out = ['| field | type | default | meaning |', '|---|---|---|---|'];
  rows(schema, prefix, out);
  return out.length > 2 ? out.join('\n') : '_No params._';
}

const TITLES: Record<PluginKind, string> = { dataset: 'Datasets', architecture: 'Architectures', explainer: 'Explainers', metric: 'Metrics', chart: 'Charts' };

/** The manifest reference, generated from the composed schema (the README embeds it). */
export function schemaMarkdown(registry: Registry): string {
  const parts = ['### Manifest fields', '', table(manifestSchema())];
  for (const kind of Object.keys(TITLES) as PluginKind[]) {
    const plugins = registry.all(kind);
    parts.push('', `### ${TITLES[kind]}`, '');
    if (plugins.length === 0) {
      parts.push('_None registered yet._');
      continue;
    }
    for (const plugin of plugins) parts.push(`#### \`${plugin.id}\` (v${plugin.version})`, '', plugin.description, '', table(plugin.params, 'params'), '');
  }
  return `${parts.join('\n').trimEnd()}\n`;
}
