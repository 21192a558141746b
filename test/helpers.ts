import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../src/core/errors.ts';
import { resolveManifest, type ResolvedManifest } from '../src/core/manifest/resolve.ts';
import { ManifestSource } from '../src/core/manifest/source.ts';
import type { Registry } from '../src/core/plugins/registry.ts';
import { seededRandom } from '../src/core/random.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'salgrid.js');
export const FIXTURE_PLUGINS = path.join(ROOT, 'test', 'fixtures', 'plugins', 'points.ts');

export function tempDir(prefix = 'salgrid-test-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Writes a points dataset: `perClass` JSON vectors per class, each class with its own mean. */
export function makePointsDataset(dir: string, options: { classes?: number; perClass?: number; dims?: number; seed?: number } = {}): void {
  const { classes = 3, perClass = 6, dims = 8, seed = 7 } = options;
  const random = seededRandom(seed);
  for (let c = 0; c < classes; c++) {
    const folder = path.join(dir, `class${c}`);
    mkdirSync(folder, { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const vector = Array.from({ length: dims }, (_, d) => Number(((d % classes === c ? 2 : 0) + random()).toFixed(4)));
      writeFileSync(path.join(folder, `item${String(i).padStart(2, '0')}.json`), JSON.stringify(vector));
    }
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

const baseEnv = { ...process.env, CI: '1', NO_COLOR: '1' };

export function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): CliResult {
  const result = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...baseEnv, ...env }, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

export function cliAsync(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, env: { ...baseEnv, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done };
}

/** A sweep manifest over the fixture plugins. */
export function fixtureManifest(options: { name?: string; data?: string; extra?: string; models?: string; explainers?: string; metrics?: string; workers?: string; k?: number } = {}): string {
  return `name: ${options.name ?? 'demo'}
plugins: [${FIXTURE_PLUGINS}]
dataset:
  source: points
  params: { dir: ${options.data ?? 'data'} }
  imageSize: [8, 8]
folds: { k: ${options.k ?? 3}, seed: 1, validation: 0.2 }
training: { epochs: 3 }
models:
${options.models ?? '  - centroid'}
explainers:
${options.explainers ?? '  - difference\n  - { id: difference, params: { power: 2 } }'}
metrics:
${options.metrics ?? '  - mass\n  - zeroing'}
execution: { backend: cpu, workers: ${options.workers ?? '{ gpu: 1, cpu: 2 }'} }
${options.extra ?? ''}`;
}

/** A command that succeeded (exit 0), else a failure showing its output. */
export function ok(result: CliResult): CliResult {
  assert.equal(result.code, 0, `exit 0 expected:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** A user mistake: exit 1, a single `salgrid:` line on stderr matching `pattern`, no stack trace. */
export function mistake(result: CliResult, pattern: RegExp): void {
  assert.equal(result.code, 1, `exit 1 expected:\n${result.stdout}\n${result.stderr}`);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line expected on stderr, got:\n${result.stderr}`);
  assert.match(lines[0], /^salgrid: /);
  assert.doesNotMatch(lines[0], /internal error|\s+at\s+\S+\s+\(/);
  assert.match(lines[0], pattern);
}

/** Every file under a folder, relative path → contents; meta.json (timings, host, pid) left out. */
export function fileSnapshot(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name !== 'meta.json') files.set(path.relative(root, full), readFileSync(full, 'latin1'));
    }
  };
  walk(root);
  return files;
}

/** Resolves manifest text (as file m.yaml) against a registry. */
export function resolveText(registry: Registry, text: string): ResolvedManifest {
  return resolveManifest(ManifestSource.parse('m.yaml', text), registry);
}

/** The problems resolving manifest text reports; fails when it resolves. */
export function manifestProblems(registry: Registry, text: string): string[] {
  try {
    resolveText(registry, text);
  } catch (error) {
    assert.ok(error instanceof UserError, `expected a UserError, got ${error}`);
    return error.details;
  }
  assert.fail('expected the manifest to be rejected');
}

/** The largest |actual − expected| and the largest |expected| (what a relative tolerance scales by). */
export function largestError(actual: ArrayLike<number>, expected: ArrayLike<number>): { error: number; scale: number } {
  assert.equal(actual.length, expected.length, 'sizes differ');
  let error = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    error = Math.max(error, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return { error, scale };
}
