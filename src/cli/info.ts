import path from 'node:path';
import type { Command } from 'commander';
import { schemaMarkdown } from '../core/manifest/markdown.ts';
import { manifestSchema } from '../core/manifest/schema.ts';
import { createRegistry, openSweep } from '../core/sweep.ts';
import { BUILTINS, runsDir } from './context.ts';
import { print, printJson, textTable } from './output.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerInfo(program: Command): void {
  program
    .command('validate <manifest>')
    .description('check a manifest (never needs the data): exit 0 when valid, 1 with every problem as file:line:col')
    .action(async (manifestFile: string, _options: unknown, command: Command) => {
      const sweep = await openSweep(manifestFile, { runsDir: runsDir(command), builtins: BUILTINS });
      const { manifest } = sweep;
      print(`${manifestFile}: valid — ${manifest.models.length} model(s), ${manifest.explainers.length} explainer variant(s), ${manifest.metrics.length} metric variant(s), ${manifest.folds.only?.length ?? manifest.folds.k} fold(s).`);
    });

  program
    .command('schema')
    .description("print the manifest's JSON Schema, composed from the core schema and every plugin's params")
    .option('--md', 'print it as the Markdown reference the README embeds')
    .option('--plugin <module>', 'also load this plugin module (repeatable)', collect, [])
    .action(async (options: { md?: boolean; plugin: string[] }) => {
      const registry = await createRegistry(BUILTINS, options.plugin, process.cwd());
      if (options.md) process.stdout.write(schemaMarkdown(registry));
      else printJson(manifestSchema(registry));
    });

  program
    .command('plugins')
    .description('list the registered plugins and their params')
    .option('--json', 'print as JSON')
    .option('--manifest <file>', "include the manifest's own plugins")
    .option('--plugin <module>', 'also load this plugin module (repeatable)', collect, [])
    .action(async (options: { json?: boolean; manifest?: string; plugin: string[] }, command: Command) => {
      const registry = options.manifest
        ? (await openSweep(options.manifest, { runsDir: runsDir(command), builtins: BUILTINS })).registry
        : await createRegistry(BUILTINS, options.plugin, process.cwd());
      const kinds = ['dataset', 'architecture', 'explainer', 'metric', 'chart'] as const;
      const plugins = kinds.flatMap((kind) => registry.all(kind));
      if (options.json) {
        return printJson(plugins.map((p) => ({ kind: p.kind, id: p.id, version: p.version, description: p.description, origin: registry.originOf(p), params: p.params })));
      }
      if (plugins.length === 0) return print('no plugins registered.');
      print(textTable(['kind', 'id', 'version', 'params', 'description'], plugins.map((p) => [p.kind, p.id, p.version, Object.keys((p.params.properties ?? {}) as object).join(', ') || '—', p.description]), false));
      const origins = new Set(plugins.map((p) => registry.originOf(p)).filter((o) => o !== BUILTINS));
      if (origins.size > 0) print(`\nfrom modules: ${[...origins].map((o) => path.basename(o)).join(', ')}`);
    });
}
