import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError, errorMessage } from '../errors.ts';
import { closest } from '../manifest/suggest.ts';
import { PLUGIN_KINDS, type Plugin, type PluginKind, type PluginOfKind } from './types.ts';

const ID_PATTERN = /^[a-z0-9][a-z0-9+._-]*$/;

/** Every plugin salgrid knows, by kind and id. */
export class Registry {
  private readonly byKind = new Map<PluginKind, Map<string, Plugin>>(PLUGIN_KINDS.map((kind) => [kind, new Map()]));
  private readonly origin = new Map<string, string>();

  register(plugin: Plugin, origin = 'built-in'): void {
    const where = `plugin ${JSON.stringify((plugin as { id?: unknown })?.id)} from ${origin}`;
    if (!plugin || typeof plugin !== 'object') throw new UserError(`${origin} registers something that is not a plugin object.`);
    if (!PLUGIN_KINDS.includes(plugin.kind)) throw new UserError(`${where} has kind ${JSON.stringify(plugin.kind)}; use one of ${PLUGIN_KINDS.join(', ')}.`);
    if (typeof plugin.id !== 'string' || !ID_PATTERN.test(plugin.id)) throw new UserError(`${where} needs a lower-case id of letters, digits and - . _ +.`);
    if (typeof plugin.version !== 'string' || plugin.version === '') throw new UserError(`${where} needs a version string (it is part of every cache key).`);
    if (typeof plugin.description !== 'string') throw new UserError(`${where} needs a one-line description.`);
    if (!plugin.params || typeof plugin.params !== 'object' || (plugin.params as { type?: unknown }).type !== 'object') {
      throw new UserError(`${where} needs a params schema of type object.`);
    }
    const table = this.byKind.get(plugin.kind)!;
    const existing = table.get(plugin.id);
    if (existing) {
      throw new UserError(`${where} duplicates the ${plugin.kind} id "${plugin.id}" already registered by ${this.origin.get(`${plugin.kind}:${plugin.id}`)}; rename one of them.`);
    }
    table.set(plugin.id, plugin);
    this.origin.set(`${plugin.kind}:${plugin.id}`, origin);
  }

  get<K extends PluginKind>(kind: K, id: string): PluginOfKind<K> {
    const plugin = this.byKind.get(kind)!.get(id);
    if (!plugin) throw new UserError(`${this.unknownMessage(kind, id)}.`);
    return plugin as PluginOfKind<K>;
  }

  /** Says that `id` is no registered plugin of `kind`, with the closest id and the known ones. */
  unknownMessage(kind: PluginKind, id: string): string {
    const known = this.ids(kind);
    const suggestion = closest(id, known);
    return `unknown ${kind} "${id}"${suggestion ? `; did you mean "${suggestion}"?` : ''} (known: ${known.join(', ') || 'none registered'})`;
  }

  has(kind: PluginKind, id: string): boolean {
    return this.byKind.get(kind)!.has(id);
  }

  ids(kind: PluginKind): string[] {
    return [...this.byKind.get(kind)!.keys()].sort();
  }

  all(kind: PluginKind): Plugin[] {
    return this.ids(kind).map((id) => this.byKind.get(kind)!.get(id)!);
  }

  originOf(plugin: Plugin): string {
    return this.origin.get(`${plugin.kind}:${plugin.id}`) ?? 'unknown';
  }
}

/**
 * Loads third-party plugin modules named in a manifest's `plugins:` list:
 * paths (relative to the manifest) or package names. A module's default
 * export is a plugin, an array of plugins, or a function given the registry.
 */
export async function loadPluginModules(registry: Registry, specs: string[], baseDir: string): Promise<void> {
  for (const spec of specs) {
    const isPath = spec.startsWith('.') || spec.startsWith('/') || /\.[cm]?[jt]s$/.test(spec);
    let url: string;
    if (spec.startsWith('file:')) {
      url = spec;
    } else if (isPath) {
      const file = path.resolve(baseDir, spec);
      if (!existsSync(file)) throw new UserError(`plugin module ${spec} not found at ${file}; fix the path in the manifest's plugins list (paths are relative to the manifest).`);
      url = pathToFileURL(file).href;
    } else {
      try {
        url = pathToFileURL(createRequire(path.join(baseDir, 'noop.js')).resolve(spec)).href;
      } catch {
        throw new UserError(`plugin package ${spec} is not installed; run \`npm install ${spec}\` next to the manifest, or give a path.`);
      }
    }
    let module: { default?: unknown };
    try {
      module = await import(url);
    } catch (error) {
      throw new UserError(`plugin module ${spec} failed to load: ${errorMessage(error)}`);
    }
    const exported = module.default;
    if (typeof exported === 'function') {
      await (exported as (r: Registry) => unknown)(registry);
    } else if (Array.isArray(exported)) {
      for (const plugin of exported) registry.register(plugin as Plugin, spec);
    } else if (exported && typeof exported === 'object') {
      registry.register(exported as Plugin, spec);
    } else {
      throw new UserError(`plugin module ${spec} has no default export; export a plugin, an array of plugins, or a function (registry) => void.`);
    }
  }
}
