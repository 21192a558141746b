import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { createAjv } from '../src/core/manifest/ajv.ts';
import { manifestSchema } from '../src/core/manifest/schema.ts';
import { Registry, loadPluginModules } from '../src/core/plugins/registry.ts';
import { generatedDocs } from '../scripts/write-manifest-reference.ts';
import { BUILTINS } from '../src/cli/context.ts';
import { createRegistry } from '../src/core/sweep.ts';
import fixtures from './fixtures/plugins/points.ts';
import { FIXTURE_PLUGINS, ROOT, cli, fixtureManifest, tempDir } from './helpers.ts';

describe('composed manifest schema', () => {
  const registry = new Registry();
  for (const plugin of fixtures) registry.register(plugin, 'fixture');
  const validate = createAjv().compile(manifestSchema(registry));

  it('accepts a manifest with grid axes, explicit grids and excludes', () => {
    const manifest = parse(
      fixtureManifest({ explainers: '  - { id: difference, params: { power: [1, 2], delayMs: { grid: [0, 5] } } }', extra: 'exclude:\n  - { model: centroid, explainer: difference, fold: 2 }\n' }),
    );
    assert.equal(validate(manifest), true, JSON.stringify(validate.errors));
  });

  it('checks each entry’s params against its plugin’s schema and ids against the registered ones', () => {
    assert.equal(validate(parse(fixtureManifest({ explainers: '  - { id: difference, params: { powr: 2 } }' }))), false);
    assert.equal(validate(parse(fixtureManifest({ metrics: '  - nope' }))), false);
    assert.equal(validate(parse(fixtureManifest({ metrics: '  - { id: mass, params: { threshold: [0.2, 2] } }' }))), false);
  });

  it('is what `salgrid schema` prints (built-ins plus the given modules), in draft 2020-12', async () => {
    const result = cli(['schema', '--plugin', FIXTURE_PLUGINS], tempDir());
    assert.equal(result.code, 0, result.stderr);
    const printed = JSON.parse(result.stdout);
    assert.equal(printed.$schema, 'https://json-schema.org/draft/2020-12/schema');
    const withBuiltins = await createRegistry(BUILTINS, [FIXTURE_PLUGINS], ROOT);
    assert.deepEqual(printed, JSON.parse(JSON.stringify(manifestSchema(withBuiltins))));
    assert.ok(printed.properties.models.items.allOf.length >= 1, 'entries carry their plugins’ params');
  });

  it('README’s manifest reference and salgrid.schema.json are up to date (npm run docs)', async () => {
    const { readme, schema } = await generatedDocs();
    assert.equal(readFileSync(path.join(ROOT, 'README.md'), 'utf8'), readme, 'README.md is stale: run `npm run docs`');
    assert.equal(readFileSync(path.join(ROOT, 'salgrid.schema.json'), 'utf8'), schema, 'salgrid.schema.json is stale: run `npm run docs`');
  });
});

describe('plugin registry', () => {
  it('refuses a duplicate id, naming both origins', () => {
    const registry = new Registry();
    registry.register(fixtures[0], 'first.js');
    assert.throws(() => registry.register(fixtures[0], 'second.js'), /plugin "points" from second\.js duplicates the dataset id "points" already registered by first\.js; rename one of them/);
  });

  it('says which plugin module failed to load, and why', async () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'broken.js'), 'throw new Error("boom");\n');
    writeFileSync(path.join(dir, 'empty.js'), 'export const x = 1;\n');
    await assert.rejects(loadPluginModules(new Registry(), ['./broken.js'], dir), /plugin module \.\/broken\.js failed to load: boom/);
    await assert.rejects(loadPluginModules(new Registry(), ['./empty.js'], dir), /plugin module \.\/empty\.js has no default export/);
    await assert.rejects(loadPluginModules(new Registry(), ['./missing.js'], dir), /plugin module \.\/missing\.js not found at .*missing\.js; fix the path/);
    await assert.rejects(loadPluginModules(new Registry(), ['no-such-salgrid-plugin'], dir), /plugin package no-such-salgrid-plugin is not installed/);
  });

  it('validates the shape of a plugin', () => {
    const registry = new Registry();
    assert.throws(() => registry.register({ ...fixtures[0], id: 'Bad Id' } as never, 'x.js'), /needs a lower-case id/);
    assert.throws(() => registry.register({ ...fixtures[0], params: {} } as never, 'x.js'), /needs a params schema of type object/);
  });

  it('`salgrid plugins` lists a manifest’s plugins with their params', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
    const result = cli(['plugins', '--manifest', 'sweep.yaml', '--json'], dir);
    assert.equal(result.code, 0, result.stderr);
    const listed = JSON.parse(result.stdout) as { kind: string; id: string; params: { properties: object } }[];
    const mass = listed.find((p) => p.id === 'mass')!;
    assert.equal(mass.kind, 'metric');
    assert.deepEqual(Object.keys(mass.params.properties), ['threshold', 'failFor']);
  });
});
