/**
 * `salgrid score`: scores saliency maps made anywhere — by salgrid, or by
 * pytorch-grad-cam in someone's notebook — with one metric, outside a sweep,
 * one row per image with the same columns as the sweep's score rows.
 *
 * - Maps: one `.npy` [N, H, W] (or [H, W]), or a folder (searched
 *   recursively) of `.npy` maps, or of image maps (first channel) where it
 *   holds no `.npy` — so `salgrid explain --out folder` and an explain
 *   artifact's `maps/` folder both work. A map's id is its path inside the
 *   folder without the last extension (`CG/img001.png.npy` → `CG/img001.png`),
 *   or its index in an array.
 * - Layer-map metrics (hit-rate, iou, …) pair each map with `--layer-maps`:
 *   an array [N, H, W] by index, or a folder by name (the id, else the file
 *   name without extensions).
 * - Perturbation metrics (confidence-change, deletion, insertion) call the
 *   model: `--model` and `--input` as `salgrid predict` takes them (shared in
 *   model-inputs.ts); map i belongs to input i (a .npy, or image files paired
 *   by name where the maps have names, else in sorted order).
 */
import { existsSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { MissingInputError, UserError } from '../core/errors.ts';
import { shownPath } from '../core/shown-path.ts';
import type { MetricPlugin, Params, ScoreRow, ScoreValue } from '../core/plugins/types.ts';
import type { Grid, MapMetricPlugin } from '../core/tensor/map-metric.ts';
import type { ModelEngine } from '../core/tensor/engine.ts';
import type { MapArray, ModelMetric } from '../core/tensor/model-metric.ts';
import type { NpyArray } from '../core/io/npy.ts';
import { addArchParamOptions, checkParams, cliRegistry, parseParamPairs } from './arch-params.ts';
import { BACKEND_HELP, parseBackend, parseThreadsHere } from './context.ts';
import { print, textTable } from './output.ts';

interface ScoreOptions {
  maps: string;
  metric: string;
  param?: string[];
  layerMaps?: string;
  model?: string;
  input?: string[];
  out: string;
  arch?: string;
  archParam?: string[];
  plugin?: string[];
  inputSize?: string;
  classes?: string;
  backend?: string;
  threads?: string;
  quiet?: boolean;
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** A set of 2-D arrays, by id: from one .npy [N, H, W] or a folder of files. */
export interface MapSet {
  /** What the flag named, for messages. */
  source: string;
  kind: 'array' | 'folder';
  ids: string[];
  /** Array i as a grid. */
  get(index: number): Promise<Grid>;
}

const NAME_EXTENSIONS = /(\.(npy|png|jpe?g|tiff?|webp|bmp))+$/i;

/** A file's name without its extensions (`img001.png.npy` → `img001`): how maps, layer maps and images are paired across folders. */
export function stemOf(id: string): string {
  const base = id.split('/').pop()!;
  return base.replace(NAME_EXTENSIONS, '') || base;
}

async function walk(dir: string, relative = ''): Promise<string[]> {
  const entries = await readdir(path.join(dir, relative), { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const rel = relative ? `${relative}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await walk(dir, rel)));
    else if (entry.isFile()) files.push(rel);
  }
  return files;
}

function arrayGrid(array: NpyArray, index: number): Grid {
  const [, h, w] = array.shape;
  const size = h * w;
  return { height: h, width: w, data: array.data.subarray(index * size, (index + 1) * size) };
}

/** Reads `--maps` or `--layer-maps`: a .npy [N, H, W] / [H, W], or a folder of .npy (else image) maps. */
export async function readMapSet(given: string, flag: string): Promise<MapSet> {
  const full = path.resolve(given);
  if (!existsSync(full)) throw new MissingInputError(full, flag === '--maps' ? 'Maps' : 'Layer maps', `check ${flag}`);
  const { readNpy } = await import('../core/io/npy.ts');
  const { readLayerMap, gridOfArray } = await import('../core/tensor/map-metric.ts');
  if (!statSync(full).isDirectory()) {
    if (!full.toLowerCase().endsWith('.npy')) throw new UserError(`${flag} ${given} is neither a .npy array nor a folder; give a .npy [N, H, W] or a folder of .npy or image maps.`);
    const array = await readNpy(full);
    if (array.shape.length === 2) {
      const grid = gridOfArray(array, full);
      return { source: given, kind: 'array', ids: ['0'], get: async () => grid };
    }
    if (array.shape.length !== 3 || array.shape[0] === 0) {
      throw new UserError(`${full} holds an array of shape (${array.shape.join(', ')}), but ${flag} takes maps [N, height, width]${array.shape.length === 4 ? ' (one value per pixel: sum or average the channels first)' : ''}.`);
    }
    return { source: given, kind: 'array', ids: Array.from({ length: array.shape[0] }, (_, i) => String(i)), get: async (i) => arrayGrid(array, i) };
  }
  const { isImageFileName } = await import('../core/io/image-io.ts');
  const all = (await walk(full)).sort();
  const npy = all.filter((file) => file.toLowerCase().endsWith('.npy'));
  // A folder from `salgrid explain` holds a .npy map and a JET overlay .png per input: the .npy files are the maps.
  const files = npy.length > 0 ? npy : all.filter((file) => isImageFileName(file.split('/').pop()!));
  if (files.length === 0) throw new UserError(`${flag} folder ${full} holds no .npy or image maps; give a folder of them or a .npy [N, H, W].`);
  const ids = files.map((file) => file.replace(/\.[^./]*$/, ''));
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new UserError(`${flag} folder ${full} holds two maps for ${id} (with different extensions); keep one.`);
    seen.add(id);
  }
  return {
    source: given,
    kind: 'folder',
    ids,
    get: async (i) => {
      const file = path.join(full, ...files[i].split('/'));
      return file.toLowerCase().endsWith('.npy') ? gridOfArray(await readNpy(file), file) : readLayerMap(file);
    },
  };
}

/**
 * For each of `ids` (the maps), the index of its partner among `other`, or -1:
 * arrays pair by index; named sets by id, else by the name without extensions
 * (when that is unique); a named set with an array by sorted order.
 */
export function pairByName(ids: readonly string[], mapsKind: MapSet['kind'], other: readonly string[], otherKind: MapSet['kind'] | 'images'): number[] {
  if (mapsKind === 'array' || otherKind === 'array') return ids.map((_, i) => (i < other.length ? i : -1));
  const exact = new Map(other.map((id, i) => [id, i]));
  const stems = new Map<string, number>();
  const repeated = new Set<string>();
  other.forEach((id, i) => {
    const stem = stemOf(id);
    if (stems.has(stem)) repeated.add(stem);
    stems.set(stem, i);
  });
  return ids.map((id) => exact.get(id) ?? (repeated.has(stemOf(id)) ? -1 : (stems.get(stemOf(id)) ?? -1)));
}

/** Rows as CSV: id first, then every column in first-seen order; null as an empty cell, booleans as true/false. */
export function rowsToCsv(rows: readonly ScoreRow[]): string {
  const columns = columnsOf(rows);
  const cell = (value: ScoreValue | undefined) => {
    if (value === null || value === undefined) return '';
    const text = String(value);
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return [columns.map((c) => cell(c)).join(','), ...rows.map((row) => columns.map((c) => cell(row[c])).join(','))].join('\n') + '\n';
}

function columnsOf(rows: readonly ScoreRow[]): string[] {
  const columns = ['id'];
  for (const row of rows) for (const key of Object.keys(row)) if (!columns.includes(key)) columns.push(key);
  return columns;
}

function isMapMetric(plugin: MetricPlugin): plugin is MetricPlugin & MapMetricPlugin {
  return typeof (plugin as Partial<MapMetricPlugin>).scoreImage === 'function';
}

function isModelMetric(plugin: MetricPlugin): plugin is ModelMetric {
  return plugin.needsModel === true && typeof (plugin as Partial<ModelMetric>).spec?.score === 'function';
}

/** The mean of each numeric or boolean column (booleans as 0/1), nulls left out: what the sweep's summary shows. */
export function columnMeans(rows: readonly ScoreRow[]): { column: string; mean: number | null; n: number }[] {
  return columnsOf(rows)
    .slice(1)
    .map((column) => {
      const values = rows.map((row) => row[column]).filter((v): v is number | boolean => typeof v === 'number' || typeof v === 'boolean').map(Number);
      return { column, mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : null, n: values.length };
    });
}

async function scoreMapMetric(plugin: MapMetricPlugin, params: Params, maps: MapSet, options: ScoreOptions, warn: (m: string) => void): Promise<ScoreRow[]> {
  if (options.model !== undefined || options.input !== undefined) {
    throw new UserError(`${plugin.id} compares maps with layer maps and does not call a model; drop --model and --input.`);
  }
  if (options.layerMaps === undefined) throw new UserError(`${plugin.id} compares each map with its image's layer map; give them with --layer-maps <.npy [N, H, W] | folder>.`);
  const layers = await readMapSet(options.layerMaps, '--layer-maps');
  if (maps.kind !== layers.kind && maps.ids.length !== layers.ids.length) {
    throw new UserError(`--maps holds ${maps.ids.length} maps and --layer-maps ${layers.ids.length}, so they cannot be paired in order; give as many of each.`);
  }
  if (maps.kind === 'array' && layers.kind === 'array' && maps.ids.length !== layers.ids.length) {
    throw new UserError(`--maps holds ${maps.ids.length} maps and --layer-maps ${layers.ids.length}; arrays pair by index, so give as many of each.`);
  }
  const partner = pairByName(maps.ids, maps.kind, layers.ids, layers.kind);
  if (partner.every((p) => p < 0)) {
    throw new UserError(`no map in ${maps.source} has a layer map of the same name in ${layers.source} (e.g. ${maps.ids[0]} vs ${layers.ids[0]}); name them alike, or give both as arrays [N, H, W] in the same order.`);
  }
  const missing = maps.ids.filter((_, i) => partner[i] < 0);
  if (missing.length > 0) warn(`${missing.length} of ${maps.ids.length} maps have no layer map in ${layers.source} (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''}); their ${plugin.id} measures are null.`);
  const problems = new Map<string, string[]>();
  const rows: ScoreRow[] = [];
  for (const [i, id] of maps.ids.entries()) {
    const map = await maps.get(i);
    const layerMap = partner[i] < 0 ? null : await layers.get(partner[i]);
    const { values, problem } = plugin.scoreImage(map, layerMap, params);
    if (problem && problem !== 'no-layer-map') problems.set(problem, [...(problems.get(problem) ?? []), id]);
    rows.push({ id, ...values });
  }
  for (const [problem, ids] of problems) {
    warn(`${ids.length} of ${maps.ids.length} maps ${problem === 'non-finite' ? 'hold non-finite values' : 'have no positive value'} (${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ', …' : ''}); their ${plugin.id} measures are null.`);
  }
  return rows;
}

async function scoreModelMetric(plugin: ModelMetric, params: Params, maps: MapSet, options: ScoreOptions, warn: (m: string) => void): Promise<ScoreRow[]> {
  if (options.layerMaps !== undefined) throw new UserError(`${plugin.id} perturbs the model's input and uses no layer maps; drop --layer-maps.`);
  if (options.model === undefined || options.input === undefined) {
    throw new UserError(`${plugin.id} calls the model on perturbed inputs; give the model with --model and its inputs with --input, as for salgrid predict.`);
  }
  const inputsModule = await import('./model-inputs.ts');
  const modelOptions = { ...options, model: options.model };
  const inputs = await inputsModule.readInputs(options.input, 'score');
  const count = inputsModule.inputCount(inputs);
  let partner: number[];
  let ids: string[];
  if (inputs.kind === 'images' && maps.kind === 'folder') {
    const names = inputs.files.map((file) => path.basename(file));
    partner = pairByName(maps.ids, 'folder', names, 'images');
    if (partner.every((p) => p < 0) && maps.ids.length === count) partner = maps.ids.map((_, i) => i);
    ids = maps.ids;
  } else {
    if (maps.ids.length !== count) {
      throw new UserError(`--maps holds ${maps.ids.length} maps and --input ${count} inputs; map i belongs to input i, so give as many of each.`);
    }
    partner = maps.ids.map((_, i) => i);
    ids = maps.kind === 'folder' ? maps.ids : inputs.kind === 'images' ? inputs.files.map((file) => path.basename(file)) : maps.ids;
  }
  const unpaired = maps.ids.filter((_, i) => partner[i] < 0);
  if (unpaired.length > 0) {
    throw new UserError(`${unpaired.length} of ${maps.ids.length} maps have no input image of the same name (${unpaired.slice(0, 3).join(', ')}${unpaired.length > 3 ? ', …' : ''}); name them alike, or give as many maps as inputs in the same order.`);
  }
  const located = await inputsModule.locateModel(modelOptions, inputs, 'score');
  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(parseBackend(options.backend) ?? 'auto', { threads: parseThreadsHere(options.threads) });
  if (!options.quiet) print(tensors.describeBackend(backend));
  const model = await inputsModule.loadModel(located);
  let engine: ModelEngine | undefined;
  try {
    inputsModule.checkInputShape(model, inputs, 'score');
    const loaded = await inputsModule.explainableModel(model);
    engine = loaded.engine;
    const { arrayInputs, imageInputs, scoreWithModel } = await import('../core/tensor/model-metric.ts');
    // Input k of the metric is the partner of map k.
    const order = partner;
    const base =
      inputs.kind === 'npy'
        ? arrayInputs(inputs.array.data instanceof Float32Array ? inputs.array.data : Float32Array.from(inputs.array.data), inputs.array.shape as [number, number, number, number])
        : imageInputs(inputs.files, loaded);
    const paired = { count: maps.ids.length, input: (indices: readonly number[]) => base.input(indices.map((k) => order[k])) };
    const mapOf = async (k: number): Promise<MapArray> => {
      const grid = await maps.get(k);
      const data = grid.data instanceof Float32Array ? grid.data : Float32Array.from(grid.data);
      return { data, height: grid.height, width: grid.width };
    };
    const values = await scoreWithModel(plugin.spec, loaded, paired, mapOf, params, { warn, names: ids });
    return ids.map((id, k) => ({ id, ...values[k] }));
  } finally {
    engine?.dispose();
    model.model?.dispose();
  }
}

async function score(options: ScoreOptions): Promise<void> {
  const out = path.resolve(options.out);
  const format = /\.csv$/i.test(out) ? 'csv' : /\.json$/i.test(out) ? 'json' : undefined;
  if (!format) throw new UserError(`--out ${options.out} must end in .csv or .json; score writes one row per image.`);
  const registry = await cliRegistry(options.plugin ?? []);
  if (!registry.has('metric', options.metric)) throw new UserError(`--metric: ${registry.unknownMessage('metric', options.metric)}.`);
  const plugin = registry.get('metric', options.metric);
  const params = checkParams(plugin, parseParamPairs(options.param ?? [], '--param', 'perturbation=zero or thresholds=[0.9,0.5]'), () => '--param');
  const modelOnly = [options.arch && '--arch', options.archParam?.length && '--arch-param', options.inputSize && '--input-size', options.classes && '--classes', options.backend && '--backend', options.threads && '--threads'].filter(Boolean);
  const maps = await readMapSet(options.maps, '--maps');
  const warned = new Set<string>();
  const warn = (message: string) => {
    if (warned.has(message)) return;
    warned.add(message);
    process.stderr.write(`salgrid: warning: ${message}\n`);
  };

  let rows: ScoreRow[];
  if (isModelMetric(plugin)) {
    rows = await scoreModelMetric(plugin, params, maps, options, warn);
  } else if (isMapMetric(plugin)) {
    if (modelOnly.length > 0) throw new UserError(`${modelOnly[0]} applies to metrics that call a model; ${plugin.id} does not.`);
    rows = await scoreMapMetric(plugin, params, maps, options, warn);
  } else {
    throw new UserError(`metric ${plugin.id} runs only inside a sweep (it reads its inputs from the sweep's artifacts); use it in a manifest.`);
  }

  const { writeFileAtomic } = await import('../core/store/atomic.ts');
  await writeFileAtomic(out, format === 'csv' ? rowsToCsv(rows) : `${JSON.stringify(rows, null, 1)}\n`);
  if (!options.quiet) {
    const means = columnMeans(rows);
    const shownMeans = means.slice(0, 24).map(({ column, mean, n }) => [column, mean === null ? '—' : Number(mean.toPrecision(6)), n]);
    print(textTable(['measure', 'mean', 'n'], shownMeans, false));
    if (means.length > shownMeans.length) print(`… and ${means.length - shownMeans.length} more columns`);
  }
  print(`wrote ${shownPath(out)}: ${rows.length} rows × ${columnsOf(rows).length - 1} measures of ${plugin.id}`);
}

export function registerScore(program: Command): void {
  addArchParamOptions(
    program
      .command('score')
      .description('score saliency maps made anywhere with one metric, outside a sweep: one row per image, the columns of the sweep’s score rows')
      .requiredOption('--maps <path>', 'a .npy [N, H, W] of maps, or a folder of .npy maps (or of image maps, first channel), searched recursively')
      .requiredOption('--metric <id>', 'the metric, e.g. hit-rate, iou, confidence-change, deletion (see salgrid info)')
      .requiredOption('--out <rows.csv|rows.json>', 'where to write the rows: CSV or JSON')
      .option('--param <key=value>', 'a metric param, value in YAML (e.g. perturbation=zero, thresholds=[0.9,0.5]); repeatable', collect)
      .option('--layer-maps <path>', 'layer maps for layer-map metrics: a .npy [N, H, W] (paired by index) or a folder of image/.npy maps (paired by name)')
      .option('--model <model>', 'for metrics that call the model: a model folder or its model.json, a name from `salgrid weights list`, a PyTorch .pth/.pt with --arch, or an .onnx file (any CNN from torch.onnx.export; --arch-param sets the onnx architecture’s normalize, layout, camLayer)')
      .option('--input <paths...>', "the maps' inputs: a .npy [N, h, w, 3] (fed as it is) or image files and folders (preprocessed as the model's card says)")
      .option('--arch <id>', 'the architecture of a .pth model (or of a bare tfjs model, for its preprocessing)')
      .option('--classes <names>', 'class names of a .pth or .onnx model, comma-separated in output order')
      .option('--input-size <n>', 'input side in pixels for a .pth model (or an .onnx one exported with a dynamic size) and image inputs (default 224; a .npy sets it)')
      .option('--backend <name>', BACKEND_HELP)
      .option('--threads <n>', 'intra-op threads of the onnx engine (default: every core)')
      .option('--quiet', 'print only where the rows went'),
  ).action(async (options: ScoreOptions) => score(options));
}
