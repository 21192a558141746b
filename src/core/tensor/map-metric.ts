/**
 * Map-only metrics: measures computed from a saliency map and the image's
 * layer map alone, without the model (so they run in the cpu pool). This
 * module knows no particular metric; `defineMapMetric` gives a metric plugin
 * everything common to them:
 *
 * - per image it reads the map (`maps/<id>.npy` of the explain artifact) and
 *   the layer map (an image file, or a `.npy`), and grades the layer map's
 *   pixel values by the `levels` param (default 255 → +3, 128 → +2, 64 → +1,
 *   32 → 0, any other value → −1, as the seed study graded its skin layer maps);
 * - it brings both to one grid: the expert layer map stays exact, and the
 *   saliency map is resized to the layer map's resolution when the sizes differ;
 * - it normalises the map to `m = map / max(map)` and, with `quantize: true`
 *   (default), to `m = floor(255·m) / 255`, the uint8 maps the study stored;
 * - images without a layer map, and maps with no positive (or a non-finite)
 *   value, get null for every measure and one warning per score task, not
 *   one per image.
 *
 * The pure functions (`parseLevels`, `layerGrid`, `resizeBilinear`,
 * `normaliseMap`, and each plugin's `scoreImage`) work on arrays, so that
 * `salgrid score` and tests can score maps made anywhere.
 */
import { UserError } from '../errors.ts';
import type { JsonSchema, MetricPlugin, ScoreContext, ScoreRow } from '../plugins/types.ts';
import { mapPath } from '../stages/maps.ts';
import { readImage } from '../io/image-io.ts';
import { readNpy, type NpyArray } from '../io/npy.ts';

/** A 2-D array in row-major order: row 0 is the image's top row, `data[y * width + x]`. */
export interface Grid {
  height: number;
  width: number;
  data: ArrayLike<number>;
}

/** The `levels` param: score per layer-map pixel value (the value written as text), and `other` for every value not listed. */
export type LevelsParam = Record<string, number>;

/** The seed study's grading of skin layer maps. */
export const DEFAULT_LEVELS: LevelsParam = { '255': 3, '128': 2, '64': 1, '32': 0, other: -1 };

/** The name of the region of pixel values that `levels` does not list. */
export const OTHER = 'other';

export interface Levels {
  /** The listed pixel values, by decreasing score (equal scores: decreasing value): the order of per-level columns. */
  values: number[];
  /** Score of each of `values`. */
  scores: number[];
  /** Score of any value not listed. */
  otherScore: number;
  /** Region names: the listed values as text, in the order of `values`, then `other`. */
  regions: string[];
  /** The highest score: pixels holding it form the top region. */
  topScore: number;
  /** The lowest score: pixels holding it form the outside region. */
  bottomScore: number;
  /** Weight of a score in weighted coverage: 1, ½, ¼, … for the distinct positive scores in decreasing order; 0 for the others. */
  weight(score: number): number;
}

/** A layer map graded by `levels`, per pixel. */
export interface LayerGrid {
  height: number;
  width: number;
  levels: Levels;
  /** Index into `levels.regions` (the last index is `other`). */
  region: Uint16Array;
  /** The level score. */
  score: Float64Array;
  /** 1 where the score is `levels.topScore` (the study's 255 region). */
  top: Uint8Array;
  /** 1 where the score is `levels.bottomScore` (outside the layers). */
  outside: Uint8Array;
  /** Pixels of each region, by index into `levels.regions`. */
  regionSizes: number[];
  topSize: number;
  outsideSize: number;
}

/** Params every map metric takes. */
export interface MapMetricParams {
  levels: LevelsParam;
  quantize: boolean;
  [key: string]: unknown;
}

export const MAP_METRIC_PARAMS: Record<string, JsonSchema> = {
  levels: {
    type: 'object',
    propertyNames: { pattern: '^(0|[1-9][0-9]{0,4}|other)$' },
    additionalProperties: { type: 'number' },
    required: [OTHER],
    minProperties: 2,
    default: DEFAULT_LEVELS,
    description:
      'Score of each layer-map pixel value (keys: the value as text, and "other" for every value not listed; 16-bit maps use 0…65535). ' +
      'The highest-scoring values form the top region (Hit Rate +1; the ground truth of pointing-game, relevance-mass, relevance-rank and pixel-auc), ' +
      'the lowest-scoring ones the outside region (Hit Rate −1; background coverage); weighted coverage weighs the positive scores 1, ½, ¼, … in decreasing order. ' +
      'For a binary lesion mask: {"255": 1, "other": 0}.',
  },
  quantize: {
    type: 'boolean',
    default: true,
    description: 'Quantise the normalised map as the study stored it (uint8): m = floor(255·max(m, 0)) / 255. false keeps m = map / max(map) as is.',
  },
};

/** Checks and orders a `levels` param; a UserError says what is wrong with it. */
export function parseLevels(param: LevelsParam = DEFAULT_LEVELS): Levels {
  const entries = Object.entries(param ?? {});
  const otherScore = param?.[OTHER];
  if (typeof otherScore !== 'number' || !Number.isFinite(otherScore)) {
    throw new UserError(`levels needs a numeric "other" score (the score of every pixel value not listed), e.g. ${JSON.stringify(DEFAULT_LEVELS)}.`);
  }
  const listed: { value: number; score: number }[] = [];
  for (const [key, score] of entries) {
    if (key === OTHER) continue;
    const value = Number(key);
    if (!/^(0|[1-9][0-9]*)$/.test(key) || value > 65535) throw new UserError(`levels key "${key}" is not a pixel value (0…65535) nor "other".`);
    if (typeof score !== 'number' || !Number.isFinite(score)) throw new UserError(`levels["${key}"] must be a number (the score of that pixel value), not ${JSON.stringify(score)}.`);
    listed.push({ value, score });
  }
  if (listed.length === 0) throw new UserError('levels lists no pixel value; give at least one, e.g. {"255": 1, "other": 0}.');
  listed.sort((a, b) => b.score - a.score || b.value - a.value);
  const all = [...listed.map((l) => l.score), otherScore];
  const topScore = Math.max(...all);
  const bottomScore = Math.min(...all);
  if (topScore === bottomScore) throw new UserError(`levels gives every pixel value the score ${topScore}; the measures need at least two different scores.`);
  const positive = [...new Set(all.filter((s) => s > 0))].sort((a, b) => b - a);
  return {
    values: listed.map((l) => l.value),
    scores: listed.map((l) => l.score),
    otherScore,
    regions: [...listed.map((l) => String(l.value)), OTHER],
    topScore,
    bottomScore,
    weight: (score) => {
      const rank = positive.indexOf(score);
      return rank < 0 ? 0 : 2 ** -rank;
    },
  };
}

/** Grades a layer map's pixel values by `levels`. */
export function layerGrid(map: Grid, levels: Levels): LayerGrid {
  const { height, width, data } = map;
  const n = height * width;
  if (data.length !== n) throw new Error(`layer map of ${height}×${width} holds ${data.length} values`);
  const otherIndex = levels.values.length;
  // Region by pixel value, through a table up to the largest listed value (faster than a Map per pixel).
  const table = new Uint16Array(Math.max(...levels.values) + 1).fill(otherIndex);
  levels.values.forEach((value, i) => (table[value] = i));
  const regionScore = [...levels.scores, levels.otherScore];
  const isTop = regionScore.map((s) => (s === levels.topScore ? 1 : 0));
  const isOutside = regionScore.map((s) => (s === levels.bottomScore ? 1 : 0));
  const region = new Uint16Array(n);
  const score = new Float64Array(n);
  const top = new Uint8Array(n);
  const outside = new Uint8Array(n);
  const regionSizes = new Array<number>(regionScore.length).fill(0);
  for (let i = 0; i < n; i++) {
    const v = data[i];
    const r = v >= 0 && v < table.length && Number.isInteger(v) ? table[v] : otherIndex;
    region[i] = r;
    score[i] = regionScore[r];
    top[i] = isTop[r];
    outside[i] = isOutside[r];
    regionSizes[r]++;
  }
  const sizeWhere = (flags: number[]) => flags.reduce((sum, flag, r) => sum + flag * regionSizes[r], 0);
  return { height, width, levels, region, score, top, outside, regionSizes, topSize: sizeWhere(isTop), outsideSize: sizeWhere(isOutside) };
}

/**
 * Bilinear resize with half-pixel centres, in float64: the sampling of
 * OpenCV's INTER_LINEAR, PyTorch's interpolate(align_corners=False) and tfjs
 * resizeBilinear(…, alignCorners=false, halfPixelCenters=true) (without
 * antialiasing when shrinking, as they do). Output pixel (y, x) samples the
 * source at ((y + ½)·h/H − ½, (x + ½)·w/W − ½), clamped to the edges.
 */
export function resizeBilinear(src: Grid, height: number, width: number): Float64Array {
  const { height: h, width: w, data } = src;
  if (data.length !== h * w) throw new Error(`map of ${h}×${w} holds ${data.length} values`);
  const axis = (out: number, size: number) => {
    const lo = new Int32Array(out);
    const hi = new Int32Array(out);
    const frac = new Float64Array(out);
    const scale = size / out;
    for (let i = 0; i < out; i++) {
      const f = Math.max(0, (i + 0.5) * scale - 0.5);
      const floor = Math.min(Math.floor(f), size - 1);
      lo[i] = floor;
      hi[i] = Math.min(floor + 1, size - 1);
      frac[i] = f - floor;
    }
    return { lo, hi, frac };
  };
  const ys = axis(height, h);
  const xs = axis(width, w);
  const out = new Float64Array(height * width);
  for (let y = 0; y < height; y++) {
    const top = ys.lo[y] * w;
    const bottom = ys.hi[y] * w;
    const fy = ys.frac[y];
    for (let x = 0; x < width; x++) {
      const x0 = xs.lo[x];
      const x1 = xs.hi[x];
      const fx = xs.frac[x];
      const upper = data[top + x0] + (data[top + x1] - data[top + x0]) * fx;
      const lower = data[bottom + x0] + (data[bottom + x1] - data[bottom + x0]) * fx;
      out[y * width + x] = upper + (lower - upper) * fy;
    }
  }
  return out;
}

/** Why an image got no measures. */
export type MapProblem = 'no-layer-map' | 'no-positive-value' | 'non-finite';

/**
 * `m = map / max(map)`, and with `quantize` `m = floor(255·max(m, 0)) / 255`
 * (a uint8 image saturates negative values to 0). Returns the problem
 * instead when the map has a non-finite value or no positive value.
 */
export function normaliseMap(data: ArrayLike<number>, quantize: boolean): Float64Array | MapProblem {
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) return 'non-finite'; // NaN and ±Infinity
    if (v > max) max = v;
  }
  if (!(max > 0)) return 'no-positive-value';
  const m = new Float64Array(data.length);
  if (quantize) {
    for (let i = 0; i < data.length; i++) {
      const v = data[i] / max;
      m[i] = v > 0 ? Math.floor(255 * v) / 255 : 0;
    }
  } else {
    for (let i = 0; i < data.length; i++) m[i] = data[i] / max;
  }
  return m;
}

/**
 * The 8-bit level k of every pixel when the whole map is quantised (each
 * value exactly k/255, as `normaliseMap(…, true)` makes them), else null.
 * Equal values have equal levels and vice versa, so measures that rank
 * pixels can count levels instead of sorting.
 */
export function quantisedLevels(m: Float64Array): Uint8Array | null {
  const k = new Uint8Array(m.length);
  for (let i = 0; i < m.length; i++) {
    const level = Math.round(255 * m[i]);
    if (!(level >= 0 && level <= 255) || m[i] !== level / 255) return null;
    k[i] = level;
  }
  return k;
}

/** The map on the layer map's grid (the layer map stays exact; the map is resized when the sizes differ), normalised. */
export function alignMap(map: Grid, layers: { height: number; width: number }, quantize: boolean): Float64Array | MapProblem {
  const same = map.height === layers.height && map.width === layers.width;
  return normaliseMap(same ? map.data : resizeBilinear(map, layers.height, layers.width), quantize);
}

/** A measure's value for one image: a number, or null where it is undefined (empty region, empty union…). */
export type Measures = Record<string, number | null>;

export interface ImageScore {
  values: Measures;
  /** Set when every measure is null because of the inputs. */
  problem?: MapProblem;
}

export interface MapMetricSpec<P extends MapMetricParams> {
  id: string;
  version: string;
  description: string;
  /** The metric's own params (JSON Schema properties, each with a default); `levels` and `quantize` are added. */
  params: Record<string, JsonSchema>;
  /** Checks params beyond the schema (throw a UserError); optional. */
  check?(params: P): void;
  /** The measures (row columns), in order, for these params. */
  columns(params: P, levels: Levels): string[];
  /** The measures of one image: `m` is the normalised map on the layer map's grid. */
  score(m: Float64Array, layers: LayerGrid, params: P): Measures;
}

export interface MapMetricPlugin<P extends MapMetricParams = MapMetricParams> extends MetricPlugin<P> {
  /** Params with every default filled in, checked. */
  resolveParams(params?: Partial<P>): P;
  /** The row columns for these params. */
  columns(params?: Partial<P>): string[];
  /** Scores one map against one layer map (null: the image has none), both as arrays. */
  scoreImage(map: Grid, layerMap: Grid | null, params?: Partial<P>): ImageScore;
}

function withDefaults<P>(params: Partial<P> | undefined, properties: Record<string, JsonSchema>): P {
  const out: Record<string, unknown> = { ...(params ?? {}) };
  for (const [name, schema] of Object.entries(properties)) {
    if (out[name] === undefined && schema.default !== undefined) out[name] = structuredClone(schema.default);
  }
  return out as P;
}

/** A map of shape [H, W] (or with one more axis of size 1) as a Grid. */
export function gridOfArray(array: NpyArray, name: string): Grid {
  const shape = array.shape.length === 3 ? array.shape.filter((n, i) => !(n === 1 && (i === 0 || i === 2))) : array.shape;
  if (shape.length !== 2) throw new UserError(`${name} has shape (${array.shape.join(', ')}); a map must be [height, width].`);
  return { height: shape[0], width: shape[1], data: array.data };
}

/** Reads a layer map: an image file (its first channel) or a `.npy` array [H, W]. */
export async function readLayerMap(file: string): Promise<Grid> {
  if (file.toLowerCase().endsWith('.npy')) return gridOfArray(await readNpy(file), file);
  const image = await readImage(file);
  const { width, height, channels, data } = image;
  if (channels === 1) return { height, width, data };
  const gray = new (data.constructor as { new (n: number): Uint8Array | Uint16Array })(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = data[i * channels];
  return { height, width, data: gray };
}

const PROBLEM_TEXT: Record<MapProblem, string> = {
  'no-layer-map': 'have no layer map',
  'no-positive-value': 'have a map with no positive value',
  'non-finite': 'have a map with non-finite values (NaN or ±Infinity)',
};

/** A metric plugin from a per-image scoring function (see the module comment). */
export function defineMapMetric<P extends MapMetricParams>(spec: MapMetricSpec<P>): MapMetricPlugin<P> {
  const properties = { ...spec.params, ...MAP_METRIC_PARAMS };
  const resolveParams = (params?: Partial<P>): P => {
    const resolved = withDefaults<P>(params, properties);
    parseLevels(resolved.levels);
    spec.check?.(resolved);
    return resolved;
  };
  const columnsOf = (params: P, levels: Levels) => spec.columns(params, levels);
  const nulls = (columns: string[]): Measures => Object.fromEntries(columns.map((c) => [c, null]));

  const scoreImage = (map: Grid, layerMap: Grid | null, partial?: Partial<P>): ImageScore => {
    const params = resolveParams(partial);
    const levels = parseLevels(params.levels);
    if (!layerMap) return { values: nulls(columnsOf(params, levels)), problem: 'no-layer-map' };
    const layers = layerGrid(layerMap, levels);
    const m = alignMap(map, layers, params.quantize);
    if (typeof m === 'string') return { values: nulls(columnsOf(params, levels)), problem: m };
    return { values: spec.score(m, layers, params) };
  };

  return {
    kind: 'metric',
    id: spec.id,
    version: spec.version,
    description: spec.description,
    params: { type: 'object', additionalProperties: false, properties },
    resolveParams,
    columns: (params) => {
      const resolved = resolveParams(params);
      return columnsOf(resolved, parseLevels(resolved.levels));
    },
    scoreImage,
    async score(ctx: ScoreContext<P>): Promise<ScoreRow[]> {
      const params = resolveParams(ctx.params);
      const problems = new Map<MapProblem, string[]>();
      const rows: ScoreRow[] = [];
      for (const item of ctx.items) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        let layerMap: Grid | null = null;
        let map: Grid = { height: 0, width: 0, data: [] };
        if (item.layerMap) {
          const mapFile = mapPath(ctx.mapsDir, item.id);
          [map, layerMap] = await Promise.all([readNpy(mapFile).then((a) => gridOfArray(a, mapFile)), readLayerMap(ctx.data.resolve(item.layerMap))]);
        }
        const { values, problem } = scoreImage(map, layerMap, params);
        if (problem) problems.set(problem, [...(problems.get(problem) ?? []), item.id]);
        rows.push({ id: item.id, ...values });
        ctx.progress(rows.length, ctx.items.length, 'maps');
      }
      // One warning per kind of problem and score task, not one per image.
      for (const [problem, ids] of problems) {
        const examples = ids.slice(0, 3).join(', ') + (ids.length > 3 ? ', …' : '');
        ctx.warn(`${spec.id}: ${ids.length} of ${ctx.items.length} images ${PROBLEM_TEXT[problem]} (${examples}); their ${spec.id} measures are null.`);
      }
      return rows;
    },
  };
}

/** Column text of a threshold: two decimals (0.95, 0.90, …), more only where the threshold needs them. */
export function formatThreshold(t: number): string {
  const fixed = t.toFixed(2);
  return Number(fixed) === t ? fixed : String(t);
}
