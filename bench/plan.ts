/**
 * Planning cost at 10³, 10⁴ and 10⁵ tasks: manifest expansion, cache keys
 * and cache lookup against a store where a tenth of the tasks are
 * published. Prints time per task for each size and the ratio to the
 * smallest size's per-task time, measured in the same run (cost must grow
 * linearly: the ratio should stay near 1). Run: npm run bench:plan
 */
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveManifest } from '../src/core/manifest/resolve.ts';
import { ManifestSource } from '../src/core/manifest/source.ts';
import { expandTasks, markCached } from '../src/core/plan/planner.ts';
import { Registry } from '../src/core/plugins/registry.ts';
import type { FileRecord, Plugin } from '../src/core/plugins/types.ts';
import { Store } from '../src/core/store/store.ts';

const unused = async () => {
  throw new Error('planning only');
};
const numberParam = { type: 'object', additionalProperties: false, properties: { value: { type: 'number', default: 0 } } };
const plugins: Plugin[] = [
  { kind: 'dataset', id: 'files', version: '1', description: 'bench dataset', params: { type: 'object', properties: {} }, inputFiles: async () => [], index: unused },
  { kind: 'architecture', id: 'net', version: '1', description: 'bench model', params: numberParam, train: unused, predict: unused },
  { kind: 'explainer', id: 'map', version: '1', description: 'bench explainer', params: numberParam, explain: unused },
  { kind: 'metric', id: 'score', version: '1', description: 'bench metric', params: numberParam, score: unused },
];
const registry = new Registry();
for (const plugin of plugins) registry.register(plugin);

// 200 data files' hashes, as an index task of a real dataset would have.
const files: FileRecord[] = Array.from({ length: 200 }, (_, i) => ({ path: path.join(os.tmpdir(), `image${i}.png`), sha256: i.toString(16).padStart(64, '0'), size: 1000 }));

const range = (n: number) => `[${Array.from({ length: n }, (_, i) => i).join(', ')}]`;
function manifestText(explainers: number, metrics: number): string {
  return `name: bench
dataset: { source: files }
folds: { k: 5 }
models: [{ id: net, params: { value: [1, 2, 3, 4] } }]
explainers: [{ id: map, params: { value: ${range(explainers)} } }]
metrics: [{ id: score, params: { value: ${range(metrics)} } }]
`;
}

const sizes = [
  { label: '10^3', explainers: 5, metrics: 10 },
  { label: '10^4', explainers: 10, metrics: 50 },
  { label: '10^5', explainers: 50, metrics: 100 },
];

const root = path.join(os.tmpdir(), `salgrid-bench-plan-${process.pid}`);
const rows: { size: string; tasks: number; ms: number; perTaskUs: number }[] = [];
for (const size of sizes) {
  const text = manifestText(size.explainers, size.metrics);
  const store = new Store(path.join(root, size.label));
  // Publish a tenth of the tasks so that lookups find something.
  const warm = expandTasks(resolveManifest(ManifestSource.parse('bench.yaml', text), registry), registry, files);
  for (let i = 0; i < warm.length; i += 10) mkdirSync(store.dir(warm[i].stage, warm[i].key), { recursive: true });
  let best = Infinity;
  let count = 0;
  for (let repeat = 0; repeat < 3; repeat++) {
    const started = performance.now();
    const manifest = resolveManifest(ManifestSource.parse('bench.yaml', text), registry);
    const tasks = expandTasks(manifest, registry, files);
    markCached(tasks, store);
    best = Math.min(best, performance.now() - started);
    count = tasks.length;
  }
  rows.push({ size: size.label, tasks: count, ms: best, perTaskUs: (best * 1000) / count });
}
rmSync(root, { recursive: true, force: true });

const base = rows[0].perTaskUs;
console.log('plan: expand + key + cache lookup (best of 3)');
console.log('size    tasks     total ms   µs/task   ratio to 10^3 per task');
for (const row of rows) {
  console.log(`${row.size.padEnd(6)} ${String(row.tasks).padStart(7)} ${row.ms.toFixed(1).padStart(11)} ${row.perTaskUs.toFixed(2).padStart(9)}   ${(row.perTaskUs / base).toFixed(2)}×`);
}
