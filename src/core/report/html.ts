/**
 * report.html: one self-contained page that opens from disk with no network.
 * Vega, Vega-Lite and vega-embed are inlined; each chart is drawn
 * interactively by vega-embed (SVG renderer) over its pre-rendered SVG, which
 * stays in place if the scripts cannot run. Gallery pictures are files beside
 * the page (`gallery/`), referred to by relative path.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { ResultRow } from '../plugins/types.ts';
import { describeBackendRow } from './backends.ts';
import { VERDICTS, modelOnDataset, qualifier, type Decisions, type ExplainerFinding, type ModelVerdict } from './decision.ts';
import { PERCENT_COLUMNS, columnsOf, confusionMatrix, formatValue } from './format.ts';
import type { Gallery } from './gallery.ts';

export interface ChartFigure {
  id: string;
  description: string;
  spec: Record<string, unknown>;
  svg: string;
  /** Paths relative to the report folder. */
  files: { spec: string; vega: string; svg: string; png: string };
}

export interface ReportPage {
  name: string;
  tables: Record<string, ResultRow[]>;
  decisions: Decisions | null;
  charts: ChartFigure[];
  /** One gallery per dataset variant that has pictures to show. */
  galleries: Gallery[];
}

export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Tables longer than this start folded. */
const FOLD_ROWS = 40;

function htmlTable(rows: ResultRow[], percent: ReadonlySet<string> = new Set()): string {
  if (rows.length === 0) return '<p class="empty">No rows.</p>';
  const columns = columnsOf(rows);
  const head = columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows.map((row) => `<tr>${columns.map((c) => `<td>${escapeHtml(formatValue(row[c] ?? null, percent.has(c)))}</td>`).join('')}</tr>`).join('\n');
  return `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table></div>`;
}

/** Tables longer than this show their first rows only; the CSV beside the page has them all. */
const MAX_ROWS = 3000;

function tableSection(title: string, rows: ResultRow[] | undefined, options: { percent?: ReadonlySet<string>; note?: string; file?: string } = {}): string {
  const list = rows ?? [];
  const table = htmlTable(list.slice(0, MAX_ROWS), options.percent);
  const cut = list.length > MAX_ROWS ? `<p class="note">The first ${MAX_ROWS} of ${list.length} rows${options.file ? `; all of them in <code>results/${escapeHtml(options.file)}.csv</code>` : ''}.</p>` : '';
  const heading = `<h3>${escapeHtml(title)}</h3>${options.note ? `<p class="note">${escapeHtml(options.note)}</p>` : ''}`;
  if (list.length <= FOLD_ROWS) return `${heading}\n${table}`;
  return `${heading}\n<details><summary>${list.length} rows</summary>\n${cut}${table}\n</details>`;
}

// ---------------------------------------------------------------- verdicts

const fixed = (value: number | null, digits = 3) => (value === null ? '—' : value.toFixed(digits));
const percent = (value: number | null) => (value === null ? '—' : `${(100 * value).toFixed(1)} %`);

function numbersTable(rows: [criterion: string, value: string, threshold: string, reading: string][]): string {
  const body = rows.map((cells) => `<tr>${cells.map((c, i) => `<${i === 0 ? 'th' : 'td'}>${c}</${i === 0 ? 'th' : 'td'}>`).join('')}</tr>`).join('\n');
  return `<table class="numbers"><thead><tr><th>criterion</th><th>value</th><th>threshold</th><th>reading</th></tr></thead><tbody>\n${body}\n</tbody></table>`;
}

const FOCUS_READING = { correct: 'on the diagnostic layers', elsewhere: 'elsewhere', unknown: 'not measured' } as const;

function verdictCard(m: ModelVerdict, decisions: Decisions, findings: ExplainerFinding[]): string {
  const { config, sources } = decisions;
  const v = VERDICTS[m.verdict];
  const names = m.basis.map(escapeHtml).join(', ');
  const basisNote =
    m.explainers === 0
      ? ''
      : m.reliableExplainers === 1
        ? ` (${names}, the one explainer with reliable maps)`
        : m.reliableExplainers > 1
          ? ` (mean over ${names}: the explainers with reliable maps)`
          : m.explainers === 1
            ? ` (${names})`
            : ` (mean over all ${m.explainers} explainers)`;
  const rows: [string, string, string, string][] = [
    ['Accuracy', `${percent(m.accuracy)}${m.accuracySd !== null ? ` ± ${(100 * m.accuracySd).toFixed(1)}` : ''} (mean over ${m.folds} fold${m.folds === 1 ? '' : 's'})`, `≥ ${percent(config.accuracy)}`, m.accuracyHigh ? 'high' : 'low'],
  ];
  if (sources.hitRate) {
    rows.push([`Hit Rate <span class="src">${escapeHtml(sources.hitRate)} · ${escapeHtml(config.hitRate.measure)}</span>`, `${fixed(m.hitRate)}${basisNote}`, `≥ ${config.hitRate.min}`, m.hitRate === null ? 'no value' : m.hitRate >= config.hitRate.min ? FOCUS_READING.correct : FOCUS_READING.elsewhere]);
  } else {
    rows.push(['Hit Rate', `not in the sweep (metric ${escapeHtml(config.hitRate.metric)})`, '', '']);
  }
  if (sources.coverage) {
    const ratio = m.coverageRatio === null ? (m.coverageTop !== null && m.coverageBackground === 0 ? '∞' : '—') : m.coverageRatio.toFixed(2);
    const pass = m.coverageTop === null || m.coverageBackground === null ? 'no value' : (m.coverageBackground <= 0 ? m.coverageTop > 0 : m.coverageTop / m.coverageBackground >= config.coverage.minRatio) ? FOCUS_READING.correct : FOCUS_READING.elsewhere;
    rows.push([`Coverage top / background <span class="src">${escapeHtml(sources.coverage)}</span>`, `${fixed(m.coverageTop)} / ${fixed(m.coverageBackground)} = ${ratio}${basisNote}`, `≥ ${config.coverage.minRatio}`, pass]);
  } else {
    rows.push(['Coverage top / background', `not in the sweep (metric ${escapeHtml(config.coverage.metric)})`, '', '']);
  }
  if (sources.reliability) {
    rows.push([
      `Map reliability <span class="src">${escapeHtml(sources.reliability)}</span>`,
      `${m.reliableExplainers} of ${m.explainers} explainers give reliable maps`,
      `DiC ≤ ${config.reliability.maxDrop}, IiC ≥ ${config.reliability.minIncrease}`,
      m.reliability,
    ]);
  } else {
    rows.push(['Map reliability', `not measured (metric ${escapeHtml(config.reliability.metric)} with ${escapeHtml(JSON.stringify(config.reliability.params))})`, '', 'unknown']);
  }
  if (m.weakestClass) rows.push(['Weakest class', `${escapeHtml(m.weakestClass.class)}: recall ${percent(m.weakestClass.recall)} (mean over folds)`, '', '']);
  const perExplainer =
    findings.length === 0
      ? ''
      : `<details><summary>Per explainer</summary>${htmlTable(
          findings.map((f) => ({
            explainer: f.explainer,
            hitRate: f.hitRate,
            coverageTop: f.coverageTop,
            coverageBackground: f.coverageBackground,
            coverageRatio: f.coverageRatio,
            focus: f.focus,
            DiC: f.drop,
            IiC: f.increase,
            reliability: f.reliability,
          })),
        )}</details>`;
  const qualifierText = qualifier(m.reliability, m.focus);
  const dataset = m.dataset === undefined ? '' : ` data-dataset="${escapeHtml(m.dataset)}"`;
  return `<article class="verdict verdict-${m.verdict}" data-model="${escapeHtml(m.model)}"${dataset} data-verdict="${m.verdict}">
<h3>${escapeHtml(modelOnDataset(m))}: ${escapeHtml(v.title)}</h3>
<p class="conclusion"><strong>${escapeHtml(v.conclusion)}</strong> ${escapeHtml(v.finding)}</p>
${qualifierText ? `<p class="qualifier reliability-${m.reliability}">${escapeHtml(qualifierText)}</p>` : ''}
${numbersTable(rows)}
${perExplainer}
</article>`;
}

function verdictsSection(decisions: Decisions | null): string {
  if (!decisions) return '<p class="empty">No model was trained: nothing to judge.</p>';
  const intro = `<p>The study's decision scheme: test accuracy high or low × the model's attention on the diagnostic layers or elsewhere (Hit Rate and layer coverage, means over folds) gives one of four verdicts; the reliability of the maps (Drop and Increase in Confidence) says how far the attention finding can be trusted. The thresholds come from <code>report.decision</code> in the manifest; they are choices, not the study's.</p>`;
  return `${intro}\n${decisions.models.map((m) => verdictCard(m, decisions, decisions.explainers.filter((f) => f.model === m.model && f.dataset === m.dataset))).join('\n')}`;
}

// ---------------------------------------------------------------- charts

function chartFigure(chart: ChartFigure): string {
  const fallback = `data:image/svg+xml;base64,${Buffer.from(chart.svg).toString('base64')}`;
  const links = [
    ['Vega-Lite', chart.files.spec],
    ['SVG', chart.files.svg],
    ['PNG', chart.files.png],
  ]
    .map(([label, file]) => `<a href="${escapeHtml(file)}">${label}</a>`)
    .join(' · ');
  return `<figure class="chart" id="figure-${escapeHtml(chart.id)}">
<div class="vega" id="chart-${escapeHtml(chart.id)}"><img class="fallback" alt="${escapeHtml(chart.description)}" src="${fallback}"></div>
<figcaption>${escapeHtml(chart.description)} <span class="files">${links}</span></figcaption>
</figure>`;
}

/** JSON that is safe inside a <script> element. */
const scriptJson = (value: unknown) => JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

const EMBED_SCRIPT = `(function () {
  var specs = JSON.parse(document.getElementById('chart-specs').textContent);
  if (typeof vegaEmbed !== 'function') return;
  Object.keys(specs).forEach(function (id) {
    var element = document.getElementById('chart-' + id);
    var fallback = element.innerHTML;
    vegaEmbed(element, specs[id], { renderer: 'svg', actions: { export: true, source: false, compiled: false, editor: false } })
      .then(function () { element.setAttribute('data-rendered', 'interactive'); })
      .catch(function (error) {
        element.innerHTML = fallback;
        element.setAttribute('data-rendered', 'fallback');
        console.warn('chart ' + id + ' shown as a picture: ' + error);
      });
  });
})();`;

let libraries: string | undefined;

/** vega, vega-lite and vega-embed's browser builds, as they are installed, without their source-map comments. */
function inlineLibraries(): string {
  if (libraries) return libraries;
  const require = createRequire(import.meta.url);
  const build = (pkg: string) => {
    let dir = path.dirname(require.resolve(pkg));
    while (!existsPackage(dir, pkg)) dir = path.dirname(dir);
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string; unpkg?: string; jsdelivr?: string };
    const code = readFileSync(path.join(dir, manifest.unpkg ?? manifest.jsdelivr!), 'utf8').replace(/\/\/# sourceMappingURL=\S+\s*$/, '');
    if (/<\/script/i.test(code)) throw new Error(`${pkg}'s browser build contains "</script" and cannot be inlined`);
    return `<script data-library="${pkg}@${manifest.version}">${code}</script>`;
  };
  libraries = ['vega', 'vega-lite', 'vega-embed'].map(build).join('\n');
  return libraries;
}

function existsPackage(dir: string, pkg: string): boolean {
  try {
    return (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string }).name === pkg;
  } catch {
    if (path.dirname(dir) === dir) throw new Error(`cannot find the package folder of ${pkg}`);
    return false;
  }
}

// ---------------------------------------------------------------- gallery

function gallerySection(galleries: Gallery[]): string {
  if (galleries.length === 0) return '<p class="empty">No gallery: the sweep has no explainers, <code>report.gallery</code> is 0, or the dataset’s items are not images.</p>';
  return galleries.map((gallery, g) => galleryBlocks(gallery, g === 0)).join('\n');
}

/** One model's pictures per block, the first block open. */
function galleryBlocks(gallery: Gallery, first: boolean): string {
  const img = (src: string | null, alt: string) => (src ? `<img src="${escapeHtml(src)}" alt="${escapeHtml(alt)}" title="${escapeHtml(alt)}">` : '<span class="missing">—</span>');
  const blocks = gallery.models.map((model, m) => {
    const head = `<tr><th>image</th><th>layer map</th>${gallery.explainers.map((e) => `<th>${escapeHtml(e)}</th>`).join('')}</tr>`;
    const body = gallery.classes
      .map((cls) => {
        const classRow = `<tr class="class-row"><th colspan="${2 + gallery.explainers.length}">${escapeHtml(cls.name)}</th></tr>`;
        const rows = cls.images.map((image) => {
          const own = image.models[m];
          const prediction = own.predicted === null ? '' : `<br><span class="${own.predicted === cls.name ? 'right' : 'wrong'}">predicted ${escapeHtml(own.predicted)}${own.confidence === null ? '' : ` (${(100 * own.confidence).toFixed(0)} %)`}</span>`;
          const cells = [
            `<td>${img(image.image, image.id)}<div class="caption">${escapeHtml(image.id)} · fold ${image.fold}${prediction}</div></td>`,
            `<td>${img(image.layerMap, `layer map of ${image.id}`)}</td>`,
            ...own.maps.map((map, e) => `<td>${img(map, `${gallery.explainers[e]} on ${image.id} (${model})`)}</td>`),
          ];
          return `<tr>${cells.join('')}</tr>`;
        });
        return [classRow, ...rows].join('\n');
      })
      .join('\n');
    const title = gallery.dataset === undefined ? model : modelOnDataset({ model, dataset: gallery.dataset });
    return `<details class="gallery-model"${first && m === 0 ? ' open' : ''}><summary>${escapeHtml(title)}</summary><div class="scroll"><table class="gallery"><thead>${head}</thead><tbody>\n${body}\n</tbody></table></div></details>`;
  });
  return blocks.join('\n');
}

// ---------------------------------------------------------------- page

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;line-height:1.45}
header{background:#1f3b57;color:#fff;padding:1.2rem 2rem}header h1{margin:0 0 .3rem;font-size:1.6rem}header p{margin:0;opacity:.85}
nav{padding:.5rem 2rem;border-bottom:1px solid #ddd;position:sticky;top:0;background:#fff;z-index:2}nav a{margin-right:1.2rem;color:#1f5f8b;text-decoration:none}
main{padding:0 2rem 3rem}section{margin-top:2rem;scroll-margin-top:3rem}h2{border-bottom:2px solid #1f3b57;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;vertical-align:top}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.scroll{overflow-x:auto}.empty,.note{color:#666}details{margin:.4rem 0}summary{cursor:pointer;color:#1f5f8b}
.verdict{border:1px solid #ccc;border-left:6px solid #999;border-radius:4px;padding:.4rem 1rem .6rem;margin:1rem 0;max-width:70rem}
.verdict h3{margin:.4rem 0}.verdict-trusted{border-left-color:#2e7d32}.verdict-over-learned{border-left-color:#c62828}.verdict-find-errors{border-left-color:#ef6c00}.verdict-under-trained{border-left-color:#6a1b9a}
.qualifier{padding:.3rem .6rem;border-radius:3px;background:#f5f5f5}.reliability-high{background:#e8f5e9}.reliability-low{background:#fff3e0}
table.numbers th{text-align:left;font-weight:600}table.numbers td{text-align:left}.src{color:#777;font-weight:400;font-size:.85em}
figure.chart{margin:1.5rem 0;padding:.5rem;border:1px solid #eee;border-radius:4px;overflow-x:auto}figcaption{color:#444;font-size:.9rem;margin-top:.3rem}.files{margin-left:.6rem;font-size:.85rem}
table.gallery td,table.gallery th{text-align:center}table.gallery img{width:128px;height:auto;image-rendering:auto;display:block;margin:auto}
table.gallery .caption{font-size:.75rem;color:#555;max-width:128px;word-break:break-all}.class-row th{background:#e3ebf3;text-align:left}
.right{color:#2e7d32}.wrong{color:#c62828}.missing{color:#aaa}
`;

/** " Tensor work: onnx:cpu on CPU (ONNX Runtime 1.23.2), 2 threads." — with the task counts when several backends ran. */
function tensorWork(rows: ResultRow[]): string {
  const tasks = new Map<string, number>();
  for (const row of rows) {
    const text = describeBackendRow(row);
    tasks.set(text, (tasks.get(text) ?? 0) + (typeof row.tasks === 'number' ? row.tasks : 0));
  }
  if (tasks.size === 0) return '';
  if (tasks.size === 1) return ` Tensor work: ${[...tasks.keys()][0]}.`;
  return ` Tensor work: ${[...tasks].map(([text, n]) => `${text} (${n} task${n === 1 ? '' : 's'})`).join('; ')}.`;
}

/** The whole page. */
export function reportHtml(page: ReportPage): string {
  const { tables } = page;
  const variants = tables.variants ?? [];
  const count = (kind: string) => variants.filter((v) => v.kind === kind).length;
  const folds = new Set((tables.folds ?? []).map((r) => r.fold)).size;
  const datasets = count('dataset') > 0 ? `${count('dataset')} dataset variant(s) × ` : '';
  const overview = `${datasets}${count('architecture')} model(s) × ${count('explainer')} explainer(s) × ${count('metric')} metric(s) × ${folds} fold(s)`;
  const specs = Object.fromEntries(page.charts.map((c) => [c.id, c.spec]));
  const summaryNote = 'mean and sd over folds of the per-fold means over images; folds: folds with a value';
  const percent = { percent: PERCENT_COLUMNS };
  const tableSections = [
    tableSection('Classification (mean ± sd over folds; precision, recall, F1 weighted by support)', tables['classification-summary'], percent),
    tableSection('Classification per fold', tables.classification, percent),
    tableSection('Classification per class and fold', tables['classification-by-class'], percent),
    tableSection('Confusion matrix (summed over folds)', confusionMatrix(tables['confusion-total'] ?? [])),
    tableSection('Saliency measures (mean ± sd over folds)', tables['summary-over-folds'], { note: summaryNote, file: 'summary-over-folds' }),
    tableSection('Saliency measures per class (mean ± sd over images of the class, all folds)', tables['summary-by-class'], { file: 'summary-by-class' }),
    tableSection('Images per class in each fold', tables.folds),
    tableSection('Backends that ran the tensor tasks (from their meta.json)', tables.backends),
  ];
  const nav = [
    ['verdicts', 'Verdicts'],
    ['charts', 'Charts'],
    ['tables', 'Tables'],
    ['gallery', 'Gallery'],
  ]
    .map(([id, title]) => `<a href="#${id}">${title}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>salgrid · ${escapeHtml(page.name)}</title>
<style>${STYLE}</style>
</head><body>
<header><h1>salgrid report: ${escapeHtml(page.name)}</h1><p>${escapeHtml(overview)}.${escapeHtml(tensorWork(tables.backends ?? []))} Tables and charts as files: <code>results/</code> and <code>charts/</code> beside this page.</p></header>
<nav>${nav}</nav>
<main>
<section id="verdicts"><h2>Verdicts</h2>
${verdictsSection(page.decisions)}
</section>
<section id="charts"><h2>Charts</h2>
${page.charts.length > 0 ? page.charts.map(chartFigure).join('\n') : '<p class="empty">No chart has data to draw.</p>'}
</section>
<section id="tables"><h2>Tables</h2>
${tableSections.join('\n')}
</section>
<section id="gallery"><h2>Gallery</h2>
${gallerySection(page.galleries)}
</section>
</main>
<script id="chart-specs" type="application/json">${scriptJson(specs)}</script>
${page.charts.length > 0 ? inlineLibraries() : ''}
<script>${EMBED_SCRIPT}</script>
</body></html>
`;
}

