/**
 * The report stage: from the aggregate's tables (nothing is recomputed), the
 * charts of the chosen chart plugins (Vega-Lite JSON, SVG, PNG under
 * `charts/`), the decision scheme's verdicts (`decision.json`,
 * `decision-by-explainer.json`), the gallery (`gallery/`) and the
 * self-contained `report.html` that shows them all.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import * as aq from 'arquero';
import type { ReportConfig } from '../manifest/resolve.ts';
import type { Registry } from '../plugins/registry.ts';
import type { ChartPlugin, ResultRow } from '../plugins/types.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { decide, decisionRows, findingRows } from './decision.ts';
import { REPORT_FILES } from './files.ts';
import { buildGallery, type Gallery, type GalleryCell } from './gallery.ts';
import { reportHtml, type ChartFigure } from './html.ts';
import { renderChart } from './render.ts';


export interface ReportParams {
  name: string;
  report: ReportConfig;
  /** The chart plugins to draw, in order (resolved by the planner). */
  charts: { id: string; version: string }[];
  gallery: Omit<GalleryCell, 'dir'>[];
  /** Labels of the dataset variants, when the sweep has several. */
  datasets?: string[];
}

export interface ReportInput {
  params: ReportParams;
  aggregateDir: string;
  /** The index and split of each dataset variant (one, unlabelled, without dataset axes). */
  datasets: { dataset?: string; indexDir: string; splitDir: string }[];
  /** Explain artifact folders, in the order of `params.gallery`. */
  explainDirs: string[];
  manifestDir: string;
  registry: Registry;
  out: string;
  warn(message: string): void;
}

/** The aggregate's tables by file stem, each read from disk when first touched. */
export function lazyTables(dir: string): Record<string, ResultRow[]> {
  const tables: Record<string, ResultRow[]> = {};
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'meta.json')) {
    const name = file.slice(0, -'.json'.length);
    let rows: ResultRow[] | undefined;
    Object.defineProperty(tables, name, { enumerable: true, get: () => (rows ??= JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as ResultRow[]) });
  }
  return tables;
}

async function writeTable(out: string, name: string, rows: ResultRow[]): Promise<void> {
  await writeFileAtomic(path.join(out, `${name}.json`), `${JSON.stringify(rows)}\n`);
  await writeFileAtomic(path.join(out, `${name}.csv`), rows.length > 0 ? aq.toCSV(aq.from(rows)) : '');
}

/** Builds the report into `out`; returns facts for meta.json. */
export async function buildReport(input: ReportInput): Promise<Record<string, unknown>> {
  const { params, out } = input;
  const tables = lazyTables(input.aggregateDir);

  const figures: ChartFigure[] = [];
  for (const { id } of params.charts) {
    const plugin = input.registry.get('chart', id) as ChartPlugin;
    let spec: Record<string, unknown> | null;
    try {
      spec = plugin.spec(tables, {});
    } catch (error) {
      throw new Error(`chart ${id} failed to build its spec: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    }
    if (!spec) continue;
    const rendered = await renderChart(spec);
    for (const warning of rendered.warnings) input.warn(`chart ${id}: ${warning}`);
    const base = `${REPORT_FILES.charts}/${id}`;
    const files = { spec: `${base}.vl.json`, vega: `${base}.vg.json`, svg: `${base}.svg`, png: `${base}.png` };
    await writeFileAtomic(path.join(out, files.spec), `${JSON.stringify(spec, null, 1)}\n`);
    await writeFileAtomic(path.join(out, files.vega), `${JSON.stringify(rendered.vega, null, 1)}\n`);
    await writeFileAtomic(path.join(out, files.svg), rendered.svg);
    await writeFileAtomic(path.join(out, files.png), rendered.png);
    figures.push({ id, description: plugin.description, spec, svg: rendered.svg, files });
  }

  const decisions = decide(tables, params.report.decision);
  if (decisions) {
    await writeTable(out, REPORT_FILES.decision, decisionRows(decisions));
    await writeTable(out, REPORT_FILES.findings, findingRows(decisions));
  }

  const cells = params.gallery.map((cell, i) => ({ ...cell, dir: input.explainDirs[i] }));
  const galleries: Gallery[] = [];
  for (const { dataset, indexDir, splitDir } of input.datasets) {
    const gallery = await buildGallery({
      dataset,
      indexDir,
      splitDir,
      manifestDir: input.manifestDir,
      cells: cells.filter((cell) => cell.dataset === dataset),
      perClass: params.report.gallery,
      predictions: params.gallery.length > 0 && params.report.gallery > 0 ? (tables.predictions ?? []).filter((row) => dataset === undefined || row.dataset === dataset) : [],
      out,
      warn: input.warn,
    });
    if (gallery) galleries.push(gallery);
  }

  const html = reportHtml({ name: params.name, tables, decisions, charts: figures, galleries });
  await writeFileAtomic(path.join(out, REPORT_FILES.html), html);
  const galleryImages = galleries.reduce((total, gallery) => total + gallery.classes.reduce((n, c) => n + c.images.length, 0), 0);
  return { charts: figures.map((f) => f.id), verdicts: decisions?.models.length ?? 0, galleryImages };
}
