/**
 * Map-only metrics: ms per image at 224×224, on a random map and a
 * synthetic-hfus layer map (a CG phantom). Three columns per measure:
 * - `arrays`: the plugin's scoreImage on arrays (grading the layer map,
 *   normalising/quantising the map, the measure itself);
 * - `resized map`: the same with a 112×112 map brought to the 224×224 layer
 *   map by bilinear resize;
 * - `score task`: the plugin's score() over 20 images from files (map .npy,
 *   layer map PNG), per image: what a sweep's cpu task spends.
 * Each sample times 10 calls (one score task); the table gives the best
 * sample and the median, measures interleaved so machine drift hits all
 * alike. The best sample is the steadier figure on a shared machine.
 * Run: node --import tsx bench/metrics.ts [repeats]
 */
import os from 'node:os';
import path from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { DatasetItem, ScoreContext } from '../src/core/plugins/types.ts';
import { seededRandom } from '../src/core/random.ts';
import { mapPath } from '../src/core/stages/maps.ts';
import { writePng } from '../src/core/io/image-io.ts';
import type { Grid, MapMetricPlugin } from '../src/core/tensor/map-metric.ts';
import { writeNpy } from '../src/core/io/npy.ts';
import { renderPhantom } from '../src/plugins/datasets/hfus-phantom.ts';
import { hitRateMetric } from '../src/plugins/metrics/hit-rate.ts';
import { iouMetric } from '../src/plugins/metrics/iou.ts';
import { layerCoverageMetric } from '../src/plugins/metrics/layer-coverage.ts';
import { pixelAucMetric } from '../src/plugins/metrics/pixel-auc.ts';
import { pointingGameMetric } from '../src/plugins/metrics/pointing-game.ts';
import { relevanceMassMetric } from '../src/plugins/metrics/relevance-mass.ts';
import { relevanceRankMetric } from '../src/plugins/metrics/relevance-rank.ts';

const repeats = Number(process.argv[2] ?? 15);
const SIZE = 224;
const IMAGES = 20;
const random = seededRandom(7);
const phantom = renderPhantom({ cls: 'CG', height: SIZE, width: SIZE, noise: 0.8, marker: false }, seededRandom(1));
const layers: Grid = { height: SIZE, width: SIZE, data: phantom.layerMap };
const randomMap = (size: number): Grid => ({ height: size, width: size, data: Float32Array.from({ length: size * size }, () => random()) });
const map = randomMap(SIZE);
const small = randomMap(SIZE / 2);

const plugins: MapMetricPlugin[] = [hitRateMetric, layerCoverageMetric, iouMetric, pointingGameMetric, relevanceMassMetric, relevanceRankMetric, pixelAucMetric];
/** The seven at their defaults, then the two that rank pixels unquantised (they sort instead of counting 256 levels). */
const cases = [
  ...plugins.map((plugin) => ({ name: plugin.id, plugin, params: {} })),
  ...[relevanceRankMetric, pixelAucMetric].map((plugin) => ({ name: `${plugin.id}, quantize: false`, plugin, params: { quantize: false } })),
];

const dir = mkdtempSync(path.join(os.tmpdir(), 'salgrid-bench-metrics-'));
const items: DatasetItem[] = [];
for (let i = 0; i < IMAGES; i++) {
  const id = `CG/img${i}.png`;
  await writeNpy(mapPath(path.join(dir, 'explain'), id), { dtype: 'float32', shape: [SIZE, SIZE], data: randomMap(SIZE).data as Float32Array });
  await writePng(path.join(dir, 'layer-maps', `img${i}.png`), { width: SIZE, height: SIZE, channels: 1, data: phantom.layerMap });
  items.push({ id, label: 0, image: id, layerMap: `layer-maps/img${i}.png` });
}
const context = (params: Record<string, unknown>): ScoreContext<any> => ({
  params,
  out: dir,
  manifestDir: dir,
  progress: () => {},
  warn: (message) => console.warn(message),
  signal: new AbortController().signal,
  writeFile: async () => {},
  data: { fold: 1, classes: ['CG'], train: [], val: [], test: items, resolve: (p) => path.join(dir, p), imageSize: [SIZE, SIZE] },
  items,
  mapsDir: path.join(dir, 'explain'),
  explainer: { id: 'bench', params: {} },
});

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const best = (values: number[]) => Math.min(...values);
const CALLS = 10;
const time = async (run: () => unknown | Promise<unknown>, calls: number, per: number) => {
  const start = performance.now();
  for (let i = 0; i < calls; i++) await run();
  return (performance.now() - start) / per;
};

type Column = 'arrays' | 'resized' | 'task';
const times = new Map(cases.map((c) => [c.name, { arrays: [] as number[], resized: [] as number[], task: [] as number[] }]));
for (const { plugin, params } of cases) {
  plugin.scoreImage(map, layers, params);
  plugin.scoreImage(small, layers, params);
  await plugin.score(context(params));
}
for (let r = 0; r < repeats; r++) {
  for (const { name, plugin, params } of cases) {
    const t = times.get(name)!;
    t.arrays.push(await time(() => plugin.scoreImage(map, layers, params), CALLS, CALLS));
    t.resized.push(await time(() => plugin.scoreImage(small, layers, params), CALLS, CALLS));
    t.task.push(await time(() => plugin.score(context(params)), 1, IMAGES));
  }
}
rmSync(dir, { recursive: true, force: true });

const cell = (values: number[]) => `${best(values).toFixed(2)} (${median(values).toFixed(2)})`;
const load = os.loadavg()[0].toFixed(1);
console.log(`Map-only metrics, ${SIZE}×${SIZE}, ms per image: best (median) of ${repeats} samples; Node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown CPU'}), load average ${load}\n`);
console.log('| metric | columns | arrays | resized map (112→224) | score task (files) |');
console.log('|---|---:|---:|---:|---:|');
for (const { name, plugin, params } of cases) {
  const t = times.get(name)!;
  console.log(`| ${name} | ${plugin.columns(params).length} | ${cell(t.arrays)} | ${cell(t.resized)} | ${cell(t.task)} |`);
}
const total = (key: Column) => plugins.reduce((sum, p) => sum + best(times.get(p.id)![key]), 0).toFixed(2);
console.log(`| the seven at their defaults (sum of best) | | ${total('arrays')} | ${total('resized')} | ${total('task')} |`);

// ---------------------------------------------------------------- perturbation metrics (call the model)
/*
 * Perturbation metrics on wasm: ms per image at 224×224 of confidence-change
 * (darken, and zero over its 10 thresholds), deletion and insertion (10
 * steps), through scoreWithModel in its sweep batches of 16 — everything but
 * reading the files: predicting the original class, building the perturbed
 * inputs, the forward passes. On MobileNetV2 (full width, seeded random
 * weights, as bench/explain.ts) and small-cnn (width 16, 4 blocks), with one
 * plain forward pass per image for scale: a measure costs about as many
 * forward passes as it scores inputs (darken 2, zero 11, deletion and
 * insertion 11 + 1 for the predicted class). Best (median) of 3 samples.
 */
{
  const { initBackend } = await import('../src/core/tensor/backend.ts');
  const tf = await import('@tensorflow/tfjs');
  const { withSeededMathRandom } = await import('../src/core/random.ts');
  const { buildMobileNetV2 } = await import('../src/plugins/architectures/mobilenet-v2-model.ts');
  const { buildSmallCnn } = await import('../src/plugins/architectures/small-cnn-model.ts');
  const { bareLoadedModel } = await import('../src/core/tensor/tensor-explainer.ts');
  const { arrayInputs, forward, scoreWithModel } = await import('../src/core/tensor/model-metric.ts');
  type ModelMetricSpec = import('../src/core/tensor/model-metric.ts').ModelMetricSpec;
  const { confidenceChange } = await import('../src/plugins/metrics/confidence-change.ts');
  const { deletion } = await import('../src/plugins/metrics/deletion.ts');
  const { insertion } = await import('../src/plugins/metrics/insertion.ts');
  const backend = await initBackend('wasm');
  const N = 16;
  const SAMPLES = 3;
  const inputs = Float32Array.from({ length: N * SIZE * SIZE * 3 }, () => 2 * random() - 1);
  const maps = Array.from({ length: N }, () => ({ data: randomMap(SIZE).data as Float32Array, height: SIZE, width: SIZE }));
  const measures = [
    { name: 'confidence-change (darken)', spec: confidenceChange.spec, params: { perturbation: 'darken', cover: 'unimportant', thresholds: [], score: 'softmax' } },
    { name: 'confidence-change (zero, 10 thresholds)', spec: confidenceChange.spec, params: { perturbation: 'zero', cover: 'unimportant', thresholds: [0.95, 0.9, 0.85, 0.8, 0.75, 0.7, 0.65, 0.6, 0.55, 0.5], score: 'softmax' } },
    { name: 'deletion (10 steps)', spec: deletion.spec, params: { steps: 10, baseline: 'zero', maxPerturbed: 1, score: 'softmax' } },
    { name: 'deletion (10 steps, blur baseline)', spec: deletion.spec, params: { steps: 10, baseline: 'blur', maxPerturbed: 1, score: 'softmax' } },
    { name: 'insertion (10 steps)', spec: insertion.spec, params: { steps: 10, baseline: 'zero', maxPerturbed: 1, score: 'softmax' } },
  ];
  const models = [
    { name: 'MobileNetV2', build: () => withSeededMathRandom(2026, () => buildMobileNetV2({ widthMult: 1, numClasses: 4, inputSize: SIZE })) },
    { name: 'small-cnn', build: () => withSeededMathRandom(2026, () => buildSmallCnn({ width: 16, blocks: 4, dropout: 0, numClasses: 4, inputSize: [SIZE, SIZE] })) },
  ];
  const rows: string[] = [];
  for (const { name: modelName, build } of models) {
    const model = build();
    const loaded = bareLoadedModel(model);
    const source = arrayInputs(inputs, [N, SIZE, SIZE, 3]);
    const forwardTimes: number[] = [];
    const all = await source.input(Array.from({ length: N }, (_, i) => i));
    for (let s = 0; s < SAMPLES + 1; s++) {
      const start = performance.now();
      const y = await forward(loaded.engine, all);
      await y.data();
      y.dispose();
      if (s > 0) forwardTimes.push((performance.now() - start) / N);
    }
    all.dispose();
    rows.push(`| ${modelName} | one forward pass (for scale) | ${cell(forwardTimes)} |`);
    for (const { name, spec, params } of measures) {
      const samples: number[] = [];
      for (let s = 0; s < SAMPLES; s++) {
        const start = performance.now();
        await scoreWithModel(spec as ModelMetricSpec, loaded, source, async (i) => maps[i], params as never);
        samples.push((performance.now() - start) / N);
      }
      rows.push(`| ${modelName} | ${name} | ${cell(samples)} |`);
    }
    loaded.engine.dispose();
    model.dispose();
    if (tf.memory().numTensors > 0) console.warn(`${tf.memory().numTensors} tensors left after ${modelName}`);
  }
  console.log(`\nPerturbation metrics, ${SIZE}×${SIZE}, ${backend.device}, batches of ${N}, ms per image: best (median) of ${SAMPLES} samples\n`);
  console.log('| model | measure | ms per image |');
  console.log('|---|---|---:|');
  for (const row of rows) console.log(row);
}
