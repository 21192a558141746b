import { cpSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { UserError } from './errors.ts';
import { resolveManifest, type ResolvedManifest } from './manifest/resolve.ts';
import { ManifestSource } from './manifest/source.ts';
import { buildPlan, type Plan } from './plan/planner.ts';
import { Registry, loadPluginModules } from './plugins/registry.ts';
import { REPORT_FILES } from './report/files.ts';
import { writeFileAtomic } from './store/atomic.ts';
import { Store } from './store/store.ts';

export interface SweepPaths {
  dir: string;
  plan: string;
  events: string;
  results: string;
  report: string;
}

export function sweepPaths(runsDir: string, name: string): SweepPaths {
  const dir = path.join(runsDir, name);
  return { dir, plan: path.join(dir, 'plan.json'), events: path.join(dir, 'events.jsonl'), results: path.join(dir, 'results'), report: path.join(dir, 'report.html') };
}

/** A manifest loaded with its plugins, validated, and bound to a cache. */
export interface Sweep {
  source: ManifestSource;
  manifest: ResolvedManifest;
  registry: Registry;
  store: Store;
  paths: SweepPaths;
  /** Plugin modules every worker loads: built-ins first, then the manifest's. */
  pluginModules: string[];
}

export interface OpenOptions {
  runsDir: string;
  /** URL of the module registering the built-in plugins. */
  builtins: string;
}

/** Registry with built-ins and the given plugin modules. */
export async function createRegistry(builtins: string, modules: string[], baseDir: string): Promise<Registry> {
  const registry = new Registry();
  await loadPluginModules(registry, [builtins], baseDir);
  await loadPluginModules(registry, modules, baseDir);
  return registry;
}

export async function openSweep(manifestFile: string, options: OpenOptions): Promise<Sweep> {
  const source = ManifestSource.read(manifestFile);
  const raw = source.data() as { plugins?: unknown };
  const modules = Array.isArray(raw?.plugins) ? raw.plugins.filter((p): p is string => typeof p === 'string') : [];
  const dir = path.dirname(path.resolve(manifestFile));
  const registry = await createRegistry(options.builtins, [], dir);
  for (const [i, module] of modules.entries()) {
    try {
      await loadPluginModules(registry, [module], dir);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      throw new UserError(`${source.where(`/plugins/${i}`)}: ${error.message}`, error.details);
    }
  }
  const manifest = resolveManifest(source, registry);
  const pluginModules = [options.builtins, ...manifest.plugins.map((p) => (p.startsWith('.') || p.startsWith('/') ? path.resolve(dir, p) : p))];
  return { source, manifest, registry, store: new Store(path.join(options.runsDir, 'cache')), paths: sweepPaths(options.runsDir, manifest.name), pluginModules };
}

export async function planSweep(sweep: Sweep): Promise<Plan> {
  return buildPlan(sweep.manifest, sweep.registry, sweep.store);
}

/** The plan as recorded in the sweep folder, where `status` and `task run` read it. */
export interface PlanFile extends Plan {
  created: string;
  pluginModules: string[];
  manifest: Record<string, unknown>;
}

export async function writePlanFile(sweep: Sweep, plan: Plan): Promise<void> {
  mkdirSync(sweep.paths.dir, { recursive: true });
  const record: PlanFile = { ...plan, created: new Date().toISOString(), pluginModules: sweep.pluginModules, manifest: sweep.manifest.data };
  await writeFileAtomic(sweep.paths.plan, JSON.stringify(record));
}

export function readPlanFile(file: string): PlanFile {
  if (!existsSync(file)) throw new UserError(`no plan recorded at ${file}; run \`salgrid run <manifest>\` first.`);
  return JSON.parse(readFileSync(file, 'utf8')) as PlanFile;
}

/** What the report artifact holds besides report.html: folders copied beside it, and tables copied into results/. */
const REPORT_FOLDERS = [REPORT_FILES.charts, REPORT_FILES.gallery];
const REPORT_TABLES = [REPORT_FILES.decision, REPORT_FILES.findings];

/**
 * Copies the aggregate's tables and the report (report.html with its charts/
 * and gallery/ folders; the verdict tables into results/) from the cache into
 * the sweep folder.
 */
export function publishResults(plan: Plan, store: Store, paths: SweepPaths): { results?: string; report?: string } {
  const shown: { results?: string; report?: string } = {};
  const aggregate = plan.tasks.find((t) => t.stage === 'aggregate');
  if (aggregate && store.has('aggregate', aggregate.key)) {
    rmSync(paths.results, { recursive: true, force: true });
    cpSync(store.dir('aggregate', aggregate.key), paths.results, { recursive: true, filter: (src) => path.basename(src) !== 'meta.json' });
    shown.results = paths.results;
  }
  const report = plan.tasks.find((t) => t.stage === 'report');
  if (report && store.has('report', report.key)) {
    const dir = store.dir('report', report.key);
    for (const folder of REPORT_FOLDERS) {
      rmSync(path.join(paths.dir, folder), { recursive: true, force: true });
      if (existsSync(path.join(dir, folder))) cpSync(path.join(dir, folder), path.join(paths.dir, folder), { recursive: true });
    }
    if (shown.results) {
      for (const table of REPORT_TABLES) for (const ext of ['json', 'csv']) if (existsSync(path.join(dir, `${table}.${ext}`))) cpSync(path.join(dir, `${table}.${ext}`), path.join(paths.results, `${table}.${ext}`));
    }
    // The page last: whoever opens it finds its pictures in place.
    cpSync(path.join(dir, REPORT_FILES.html), paths.report);
    shown.report = paths.report;
  }
  return shown;
}
