/**
 * The engines side by side, in one run on one machine:
 *
 * 1. forward at batch 8, 224×224, of the four study nets (MobileNetV2 full
 *    width, ResNet101, DenseNet201, GoogLeNet; seeded random weights, 4
 *    classes, built through their architecture plugins as bench/explain.ts
 *    builds MobileNetV2);
 * 2. per image at 224×224 on MobileNetV2 and ResNet101 (each at its plugin's
 *    default CAM layer): Grad-CAM, integrated gradients (50 steps),
 *    ScoreCAM, occlusion (15×15 window, stride 9), and the perturbation
 *    metrics confidence-change (darken) and deletion (10 steps) through
 *    `scoreWithModel` in the sweep's batches of 16.
 *
 * Engines (`--engines`, default onnx:cpu,wasm,torch): `onnx:cpu` (also
 * onnx:webgpu, onnx:cuda where they start) is salgrid's ONNX Runtime engine
 * with `--threads` intra-op threads (default 2); `wasm` is TensorFlow.js on
 * WebAssembly (single-threaded), the baseline; `torch` is the anchor, a
 * HAND-WRITTEN PyTorch equivalent of each method (bench/anchors/
 * torch_explain.py, torchvision's nets with random weights, the same
 * threads) on Debian's python3-torch where it is installed — not
 * pytorch-grad-cam or Captum, which cannot be installed here. `torch:cuda`
 * runs the anchor on a GPU.
 *
 * Every (engine, net, work) runs in its own child process, so a crash or an
 * out-of-memory abort costs only its row; a wasm forward that does not fit
 * wasm's 4 GiB heap at batch 8 is retried at 4, 2, 1 in a fresh process. A
 * row that outlives `--timeout` seconds is reported as "> N s". Rows run
 * engine after engine for the same work, so machine drift hits all alike.
 * A work whose first call takes under 10 s is timed over 3 more calls
 * (median); a slower one reports its first call (†), except on onnx, whose
 * first call builds the sessions: it always gets a second, steady call (the
 * first is shown beside it). For the slow perturbation explainers on the
 * baseline (ScoreCAM, occlusion on `--sample-on`, default wasm), only the
 * first `--sample` (default 8) full batches of masked inputs run through
 * the network; the others are answered with zeros and their time is
 * extrapolated from the mean of the timed ones (‡ in the table).
 *
 * Run: node --import tsx bench/engines.ts [--quick] [--only work,…] [--nets net,…]
 *        [--engines onnx:cpu,wasm,torch] [--threads 2] [--timeout 600]
 *        [--sample 8] [--sample-on wasm] [--allow-software] [--quickstart [auto,wasm]]
 *   --quick       forward, Grad-CAM and confidence-change only
 *   --only        these works only (forward, gradcam, integrated-gradients, scorecam, occlusion, confidence-change, deletion)
 *   --nets        these nets only (mobilenet-v2, resnet101, densenet201, googlenet)
 *   --allow-software  let onnx:webgpu run on a software adapter (lavapipe): checks the bench, gives no figures
 *   --quickstart  also time `npm start` (the quickstart) from an empty runs folder, per backend given (default auto)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type * as tf from '@tensorflow/tfjs';
import { tensorWorkerEnv } from '../src/core/exec/tensor-env.js';
import type { LoadedModel, Params } from '../src/core/plugins/types.ts';
import type { ModelEngine } from '../src/core/tensor/engine.ts';
import { findTorch } from './torch-python.ts';

const SELF = fileURLToPath(import.meta.url);
/** Bundled (scripts/pack-gpu-bench.sh) the bench runs as plain .mjs; from the repository through tsx. */
const CHILD_ARGS = SELF.endsWith('.ts') ? ['--import', 'tsx', SELF] : [SELF];
const TORCH_SCRIPT = path.join(path.dirname(SELF), 'anchors', 'torch_explain.py');

const NETS = ['mobilenet-v2', 'resnet101', 'densenet201', 'googlenet'] as const;
type Net = (typeof NETS)[number];
/** The nets the per-image rows run on. */
const EXPLAIN_NETS: readonly Net[] = ['mobilenet-v2', 'resnet101'];
const WORKS = ['forward', 'gradcam', 'integrated-gradients', 'scorecam', 'occlusion', 'confidence-change', 'deletion'] as const;
type Work = (typeof WORKS)[number];
const QUICK: readonly Work[] = ['forward', 'gradcam', 'confidence-change'];
const DEFAULT_ENGINES = ['onnx:cpu', 'wasm', 'torch'];
const ENGINE_NAMES = ['onnx:cpu', 'onnx:webgpu', 'onnx:cuda', 'wasm', 'torch', 'torch:cuda'];
const BASELINE = 'wasm';
const SIZE = 224;
const CLASSES = 4;
const FORWARD_BATCH = 8;
/** A first call under this is followed by 3 timed calls (median). */
const REPEAT_BELOW_MS = 10_000;
/** ScoreCAM's and occlusion's batch of masked inputs (pytorch-grad-cam's ScoreCAM default; occlusion's internalBatchSize here). */
const MASK_BATCH = 16;
/** The slow perturbation explainers whose baseline rows may be sampled. */
const SAMPLED_WORKS: readonly Work[] = ['scorecam', 'occlusion'];

interface WorkSetting {
  /** Images per call (the same on every engine). */
  images: number;
  /** What the table says about the settings. */
  shown: string;
  /** The explainer's params (explainers only), per engine where they differ. */
  params?: (engine: string, net: Net) => Params;
}

const SETTINGS: Record<Exclude<Work, 'forward'>, WorkSetting> = {
  gradcam: { images: 2, shown: 'default CAM layer', params: () => ({}) },
  // internalBatchSize only bounds memory: 16 interpolated 224×224 inputs through a backward pass exhaust wasm's 4 GiB heap; MobileNetV2 fits 8 (bench/explain.ts), ResNet101 4.
  'integrated-gradients': {
    images: 1,
    shown: '50 steps, 16 inputs per pass (wasm: 8 on MobileNetV2, 4 on ResNet101)',
    params: (engine, net) => ({ steps: 50, internalBatchSize: engine !== 'wasm' ? 16 : net === 'mobilenet-v2' ? 8 : 4 }),
  },
  scorecam: { images: 1, shown: `default CAM layer, ${MASK_BATCH} masked inputs per pass`, params: () => ({ batchSize: MASK_BATCH }) },
  occlusion: { images: 1, shown: `15×15 window, stride 9, ${MASK_BATCH} windows per pass`, params: () => ({ window: 15, stride: 9, internalBatchSize: MASK_BATCH }) },
  'confidence-change': { images: 16, shown: 'darken, softmax; batch of 16' },
  deletion: { images: 16, shown: '10 steps, zero baseline; batch of 16' },
};

interface Result {
  engine: string;
  net: Net;
  work: Work;
  device?: string;
  /** Images per call (forward: the batch actually used). */
  images?: number;
  msPerImage?: number;
  /** The first call, in ms (onnx: includes building the sessions). */
  firstMs?: number;
  calls?: number;
  /** How the time was sampled and extrapolated, when it was. */
  sampled?: string | null;
  error?: string;
  /** The row's limit in seconds, when it ran out. */
  timedOutAfterS?: number;
  /** Forward: batches that did not fit before this one. */
  didNotFit?: number[];
  /** The machine's 1-minute load average when the row ended (others' work shares the cores). */
  load?: number;
}

function argValue(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  const value = at >= 0 ? process.argv[at + 1] : undefined;
  return value === undefined || value.startsWith('--') ? undefined : value;
}

function listArg<T extends string>(flag: string, allowed: readonly string[], fallback: readonly T[]): T[] {
  const value = argValue(flag);
  if (value === undefined) return [...fallback];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = items.filter((item) => !allowed.includes(item));
  if (unknown.length > 0) throw new Error(`${flag} takes ${allowed.join(', ')}; got ${unknown.join(', ')}`);
  return items as T[];
}

// ---------------------------------------------------------------- child: one work on one engine

/** The net through its architecture plugin, with seeded random weights, as an explainer loads a trained model. */
async function loadNet(net: Net): Promise<LoadedModel> {
  const { withSeededMathRandom } = await import('../src/core/random.ts');
  const { mobileNetV2 } = await import('../src/plugins/architectures/mobilenet-v2.ts');
  const { resNets } = await import('../src/plugins/architectures/resnet.ts');
  const { denseNets } = await import('../src/plugins/architectures/densenet.ts');
  const { googLeNet } = await import('../src/plugins/architectures/googlenet.ts');
  const { MOBILENET_V2_TARGET_LAYER } = await import('../src/plugins/architectures/mobilenet-v2-model.ts');
  const { RESNET_TARGET_LAYER } = await import('../src/plugins/architectures/resnet-model.ts');
  const { DENSENET_TARGET_LAYER } = await import('../src/plugins/architectures/densenet-model.ts');
  const { GOOGLENET_TARGET_LAYER } = await import('../src/plugins/architectures/googlenet-model.ts');
  const choices = {
    'mobilenet-v2': { plugin: mobileNetV2, params: { widthMult: 1 }, target: MOBILENET_V2_TARGET_LAYER },
    resnet101: { plugin: resNets.find((p) => p.id === 'resnet')!, params: { depth: 101 }, target: RESNET_TARGET_LAYER },
    densenet201: { plugin: denseNets.find((p) => p.id === 'densenet')!, params: { depth: 201 }, target: DENSENET_TARGET_LAYER },
    googlenet: { plugin: googLeNet, params: { transformInput: false }, target: GOOGLENET_TARGET_LAYER },
  } as const;
  const { plugin, params, target } = choices[net];
  const model = withSeededMathRandom(2026, () => plugin.build(params, CLASSES, [SIZE, SIZE], 'none'));
  return plugin.loaded(model, {
    format: 1,
    architecture: { id: plugin.id, version: plugin.version, params: plugin.resolve(params, 'none') },
    classes: Array.from({ length: CLASSES }, (_, i) => `class${i}`),
    preprocessing: { size: [SIZE, SIZE], normalisation: plugin.normalisation },
    target,
    origin: { bench: 'random weights' },
  });
}

/**
 * The engine, with every `scores` call of exactly `batch` rows after the
 * first `limit` answered with zeros instead of run: the work around them
 * (making masks, reading results) still runs, and `extraMs` is what the
 * skipped calls would have cost at the mean of the run ones (the first left
 * out of the mean when there are 3 or more: it may carry warm-up).
 */
class SampledEngine implements ModelEngine {
  private readonly timed: number[] = [];
  private skipped = 0;
  private seen = 0;

  constructor(
    private readonly inner: ModelEngine,
    private readonly tfjs: typeof tf,
    private readonly batch: number,
    private readonly limit: number,
  ) {}

  get info() {
    return this.inner.info;
  }

  reset(): void {
    this.timed.length = 0;
    this.skipped = 0;
    this.seen = 0;
  }

  async scores(x: tf.Tensor4D, options?: Parameters<ModelEngine['scores']>[1]): Promise<tf.Tensor2D> {
    if (x.shape[0] !== this.batch) return this.inner.scores(x, options);
    if (this.seen++ >= this.limit) {
      this.skipped++;
      return this.tfjs.zeros([x.shape[0], CLASSES]) as tf.Tensor2D;
    }
    const started = performance.now();
    const out = await this.inner.scores(x, options);
    await out.data();
    this.timed.push(performance.now() - started);
    return out;
  }

  layerOutputs(...args: Parameters<ModelEngine['layerOutputs']>) {
    return this.inner.layerOutputs(...args);
  }

  gradients(...args: Parameters<ModelEngine['gradients']>) {
    return this.inner.gradients(...args);
  }

  forwardFromLayer(...args: Parameters<ModelEngine['forwardFromLayer']>) {
    return this.inner.forwardFromLayer(...args);
  }

  dispose(): void {
    this.inner.dispose();
  }

  extraMs(): number {
    if (this.skipped === 0 || this.timed.length === 0) return 0;
    const used = this.timed.length >= 3 ? this.timed.slice(1) : this.timed;
    return (this.skipped * used.reduce((a, b) => a + b, 0)) / used.length;
  }

  note(): string | null {
    return this.skipped === 0 ? null : `${this.timed.length} of ${this.timed.length + this.skipped} batches of ${this.batch} perturbed inputs timed, the rest extrapolated`;
  }
}

async function runChild(engine: string, net: Net, work: Work | '--probe', options: { batch: number; threads: number; sample: number; allowSoftwareAdapter: boolean }): Promise<void> {
  const report = (result: Partial<Result>): void => {
    process.stdout.write(`RESULT ${JSON.stringify({ engine, net, work, ...result })}\n`);
  };
  const { initBackend } = await import('../src/core/tensor/backend.ts');
  let device: string;
  try {
    const info = engine === 'wasm' ? await initBackend('wasm') : await initBackend(engine as 'onnx:cpu' | 'onnx:webgpu' | 'onnx:cuda', { threads: options.threads, allowSoftwareAdapter: options.allowSoftwareAdapter });
    device = info.threads === undefined ? info.device : `${info.device}, ${info.threads} thread${info.threads === 1 ? '' : 's'}${info.tfjs ? `; per-image math on tfjs ${info.tfjs}` : ''}`;
  } catch (error) {
    return report({ error: `engine unavailable: ${(error as Error).message.split('\n')[0]}` });
  }
  if (work === '--probe') return report({ device });
  const tfjs = await import('@tensorflow/tfjs');
  const loaded = await loadNet(net);
  const images = options.batch;
  const input = tfjs.randomNormal([images, SIZE, SIZE, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const sampled = options.sample > 0 && (SAMPLED_WORKS as readonly string[]).includes(work) ? new SampledEngine(loaded.engine, tfjs, MASK_BATCH, options.sample) : undefined;
  const model: LoadedModel = sampled ? { ...loaded, engine: sampled } : loaded;

  let once: () => Promise<void>;
  if (work === 'forward') {
    once = async () => {
      const y = await model.engine.scores(input);
      await y.data();
      y.dispose();
    };
  } else if (work === 'confidence-change' || work === 'deletion') {
    const { arrayInputs, scoreWithModel } = await import('../src/core/tensor/model-metric.ts');
    const { confidenceChange } = await import('../src/plugins/metrics/confidence-change.ts');
    const { deletion } = await import('../src/plugins/metrics/deletion.ts');
    const { seededRandom } = await import('../src/core/random.ts');
    const spec = (work === 'deletion' ? deletion.spec : confidenceChange.spec) as import('../src/core/tensor/model-metric.ts').ModelMetricSpec;
    const random = seededRandom(11);
    const maps = Array.from({ length: images }, () => ({ data: Float32Array.from({ length: SIZE * SIZE }, () => random()), height: SIZE, width: SIZE }));
    const source = arrayInputs(input.dataSync() as Float32Array, [images, SIZE, SIZE, 3]);
    once = async () => {
      const rows = await scoreWithModel(spec, model, source, async (i) => maps[i], {}, { batchSize: images });
      if (rows.length !== images) throw new Error(`${rows.length} rows for ${images} images`);
    };
  } else {
    const { checkParams } = await import('../src/cli/arch-params.ts');
    const explainers = {
      gradcam: (await import('../src/plugins/explainers/cam/gradcam.ts')).gradcam,
      'integrated-gradients': (await import('../src/plugins/explainers/attribution/integrated-gradients.ts')).integratedGradients,
      scorecam: (await import('../src/plugins/explainers/cam/scorecam.ts')).scorecam,
      occlusion: (await import('../src/plugins/explainers/attribution/occlusion.ts')).occlusion,
    };
    const explainer = explainers[work];
    const params = checkParams(explainer, structuredClone(SETTINGS[work].params!(engine, net)), () => 'params');
    once = async () => {
      const result = await explainer.explainInput(model, input, params, { warn: () => {} });
      if (result.maps.length !== images) throw new Error(`${result.maps.length} maps for ${images} images`);
    };
  }
  const call = async () => {
    sampled?.reset();
    const started = performance.now();
    await once();
    return performance.now() - started + (sampled?.extraMs() ?? 0);
  };
  try {
    const first = await call();
    let times = [first];
    if (first < REPEAT_BELOW_MS) {
      times = [];
      for (let i = 0; i < (work === 'forward' ? 5 : 3); i++) times.push(await call());
    } else if (engine.startsWith('onnx')) {
      times = [await call()];
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    report({ device, images, msPerImage: median / images, firstMs: first, calls: times.length, sampled: sampled?.note() ?? null });
  } catch (error) {
    if (process.env.BENCH_DEBUG) console.error(error);
    report({ device, images, error: (error as Error).message.split('\n')[0].slice(0, 200) });
  } finally {
    input.dispose();
    loaded.engine.dispose();
    loaded.model?.dispose();
  }
}

// ---------------------------------------------------------------- parent

interface Spawned {
  stdout: string;
  stderr: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
}

/** The child running now, in a process group of its own (npm start's workers with it): stopped with the bench (Ctrl-C, kill), so that no row keeps running on its own. */
let active: ReturnType<typeof spawn> | undefined;
function killActive(): void {
  if (active?.pid === undefined || active.exitCode !== null || active.signalCode !== null) return;
  try {
    process.kill(-active.pid, 'SIGKILL');
  } catch {
    active.kill('SIGKILL');
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killActive();
    process.exit(130);
  });
}

function run(command: string, args: string[], timeoutS: number, env: NodeJS.ProcessEnv = process.env): Promise<Spawned> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
    active = proc;
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      killActive();
    }, timeoutS * 1000);
    proc.on('error', (error) => {
      clearTimeout(timer);
      resolve({ stdout, stderr: `${stderr}\n${error.message}`, code: null, signal: null, timedOut });
    });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ stdout, stderr, code, signal, timedOut });
    });
  });
}

function resultOf(spawned: Spawned, base: Pick<Result, 'engine' | 'net' | 'work'>, timeoutS: number): Result {
  const line = spawned.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (line) return { ...base, ...(JSON.parse(line.slice('RESULT '.length)) as Partial<Result>) };
  if (spawned.timedOut) return { ...base, timedOutAfterS: timeoutS };
  const last = spawned.stderr.trim().split('\n').filter((l) => l.trim() !== '' && !/^\s+at /.test(l)).slice(-1)[0] ?? '';
  return { ...base, error: `process ended (${spawned.signal ?? `exit ${spawned.code}`})${last ? `: ${last.slice(0, 200)}` : ''}` };
}


interface Options {
  threads: number;
  timeoutS: number;
  sample: number;
  sampleOn: string[];
  /** onnx:webgpu may run on a software adapter (lavapipe): for checking the bench, not for figures. */
  allowSoftwareAdapter: boolean;
  torch?: { python: string };
}

/** Images per call the row starts at: the forward batch, or the work's setting. */
const defaultSize = (work: Work): number => (work === 'forward' ? FORWARD_BATCH : SETTINGS[work].images);

async function runRow(engine: string, net: Net, work: Work, options: Options, size = defaultSize(work)): Promise<Result> {
  const base = { engine, net, work };
  const sample = options.sampleOn.includes(engine) && SAMPLED_WORKS.includes(work) ? options.sample : 0;
  if (engine.startsWith('torch')) {
    const args = [TORCH_SCRIPT, '--net', net, '--work', work, '--threads', String(options.threads), '--batch', String(size), '--images', String(size), '--sample', String(sample), '--batch-size', String(MASK_BATCH)];
    if (engine === 'torch:cuda') args.push('--device', 'cuda');
    return resultOf(await run(options.torch!.python, args, options.timeoutS), base, options.timeoutS);
  }
  const args = [...CHILD_ARGS, '--child', work, '--engine', engine, '--net', net, '--batch', String(size), '--threads', String(options.threads), '--sample', String(sample)];
  if (options.allowSoftwareAdapter) args.push('--allow-software');
  // The environment salgrid gives its tensor workers (glibc's malloc thresholds raised).
  return resultOf(await run(process.execPath, args, options.timeoutS, tensorWorkerEnv(process.env)), base, options.timeoutS);
}

/** A crash, or an error that says the memory ran out (wasm's heap is capped at 4 GiB; a failed allocation there traps). */
function outOfMemory(result: Result): boolean {
  return /^process ended|memory access out of bounds|out of memory|Aborted|bad_alloc|Cannot allocate/i.test(result.error ?? '');
}

/** A row, retried with half the images per call in a fresh process while it runs out of memory. */
async function fittingRow(engine: string, net: Net, work: Work, options: Options): Promise<Result> {
  const didNotFit: number[] = [];
  for (let size = defaultSize(work); ; size = Math.floor(size / 2)) {
    const result = await runRow(engine, net, work, options, size);
    if (!outOfMemory(result) || size === 1) return didNotFit.length > 0 ? { ...result, didNotFit } : result;
    didNotFit.push(size);
    console.log(`    ${engine} ${net} ${work}: ${size} image${size > 1 ? 's' : ''} per call did not fit (${result.error}); retrying with ${Math.floor(size / 2)} in a fresh process`);
  }
}

const format = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : ms >= 10 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`);

/** ms for the row's unit: per image, or per batch of 8 for forward rows. */
function unitMs(r: Result): number | undefined {
  if (r.msPerImage === undefined) return undefined;
  return r.work === 'forward' ? r.msPerImage * FORWARD_BATCH : r.msPerImage;
}

function cell(r: Result | undefined): string {
  if (!r) return '—';
  // The limit bounds the whole row (building the net, every call), not one image: no per-image figure follows from it.
  if (r.timedOutAfterS !== undefined) return `row > ${r.timedOutAfterS} s (timed out)`;
  if (r.error) return `failed: ${r.error.slice(0, 80)}`;
  const marks = `${r.sampled ? ' ‡' : ''}${r.calls === 1 && !r.engine.startsWith('onnx') ? ' †' : ''}${r.didNotFit ? ` (${r.images} per call; ${r.didNotFit.join(', ')} did not fit)` : ''}`;
  return `${format(unitMs(r)!)}${marks}`;
}

function ratio(numerator: Result | undefined, denominator: Result | undefined): string {
  const a = numerator && unitMs(numerator);
  const b = denominator && unitMs(denominator);
  if (a === undefined || b === undefined) return '—';
  const value = a / b;
  return `${value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2)}×`;
}

function machine(): string {
  const cpus = os.cpus();
  const memory = `${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`;
  // From the repository (bench/..) or from the GPU bench's payload (node_modules beside the bundle).
  const versions = (name: string) => {
    for (const root of [path.join(path.dirname(SELF), '..'), path.dirname(SELF)]) {
      try {
        return JSON.parse(readFileSync(path.join(root, 'node_modules', name, 'package.json'), 'utf8')).version as string;
      } catch {
        // not here
      }
    }
    return '?';
  };
  return `${os.availableParallelism()} cores (${cpus[0]?.model ?? 'unknown CPU'}), ${memory}, ${os.type()} ${os.release()}, Node ${process.version}, onnxruntime-node ${versions('onnxruntime-node')}, tfjs ${versions('@tensorflow/tfjs')}`;
}

async function quickstart(backends: string[], timeoutS: number): Promise<void> {
  console.log(`\nQuickstart (npm start) from an empty runs folder (SALGRID_RUNS), limit ${timeoutS} s:`);
  const rows: string[] = [];
  for (const backend of backends) {
    const runs = mkdtempSync(path.join(os.tmpdir(), 'salgrid-bench-quickstart-'));
    const args = ['start', ...(backend === 'auto' ? [] : ['--', '--backend', backend])];
    const started = performance.now();
    const spawned = await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, timeoutS, { ...process.env, SALGRID_RUNS: runs });
    const seconds = (performance.now() - started) / 1000;
    rmSync(runs, { recursive: true, force: true });
    const said = `${spawned.stdout}\n${spawned.stderr}`;
    const line = said.split('\n').find((l) => /backend: /.test(l))?.trim() ?? 'no backend line';
    const outcome = spawned.timedOut ? `> ${timeoutS} s (timed out)` : spawned.code === 0 ? `${seconds.toFixed(0)} s` : `failed (exit ${spawned.code ?? spawned.signal}) after ${seconds.toFixed(0)} s`;
    console.log(`  ${backend.padEnd(10)} ${outcome.padStart(10)}   ${line.slice(0, 160)}`);
    rows.push(`| npm start ${backend === 'auto' ? '' : `-- --backend ${backend}`} | ${outcome} | ${line.replace(/\|/g, '\\|').slice(0, 200)} |`);
  }
  console.log('\n| command | wall time | backend line |');
  console.log('|---|---:|---|');
  for (const row of rows) console.log(row);
}

async function main(): Promise<void> {
  const engines = listArg('--engines', ENGINE_NAMES, DEFAULT_ENGINES);
  const nets = listArg<Net>('--nets', NETS, NETS);
  const works = listArg<Work>('--only', WORKS, process.argv.includes('--quick') ? QUICK : WORKS);
  const options: Options = {
    threads: Number(argValue('--threads') ?? 2),
    timeoutS: Number(argValue('--timeout') ?? 600),
    sample: Number(argValue('--sample') ?? 8),
    sampleOn: listArg('--sample-on', ENGINE_NAMES, [BASELINE]),
    allowSoftwareAdapter: process.argv.includes('--allow-software'),
  };
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`${machine()}; load average at start: ${load()}`);
  console.log(`onnx and torch rows with ${options.threads} threads; wasm single-threaded; per-row limit ${options.timeoutS} s; sampled rows (‡): ${options.sample > 0 ? `${SAMPLED_WORKS.join(', ')} on ${options.sampleOn.join(', ')}, ${options.sample} batches timed` : 'none'}`);

  const present: string[] = [];
  const devices = new Map<string, string>();
  for (const engine of engines) {
    if (engine.startsWith('torch')) {
      const torch = findTorch();
      if ('reason' in torch) {
        console.log(`${engine}: skipped (${torch.reason})`);
        continue;
      }
      options.torch = torch;
      devices.set(engine, `${torch.version}: the hand-written equivalents of bench/anchors/torch_explain.py (not pytorch-grad-cam / Captum), ${engine === 'torch:cuda' ? 'CUDA' : `CPU, ${options.threads} threads`}`);
      present.push(engine);
      continue;
    }
    const probe = await runRow(engine, 'mobilenet-v2', '--probe' as Work, options, 1);
    if (probe.error || probe.timedOutAfterS !== undefined) {
      console.log(`${engine}: skipped (${probe.error ?? 'the probe timed out'})`);
      continue;
    }
    devices.set(engine, probe.device ?? '?');
    present.push(engine);
  }
  for (const engine of present) console.log(`  ${engine.padEnd(12)} ${devices.get(engine)}`);

  const rows: { net: Net; work: Work; results: Map<string, Result> }[] = [];
  for (const work of works) {
    for (const net of work === 'forward' ? nets : nets.filter((n) => EXPLAIN_NETS.includes(n))) {
      const results = new Map<string, Result>();
      rows.push({ net, work, results });
      console.log(`\n${net} · ${work}${work === 'forward' ? ` (batch ${FORWARD_BATCH}, ms per batch)` : ` (${SETTINGS[work].shown}; ms per image)`}`);
      for (const engine of present) {
        const result = { ...(await fittingRow(engine, net, work, options)), load: os.loadavg()[0] };
        results.set(engine, result);
        const first = result.firstMs !== undefined && result.engine.startsWith('onnx') ? `   first call ${format(result.firstMs)}` : '';
        console.log(`  ${engine.padEnd(12)} ${cell(result).padStart(12)}${first}   load ${result.load.toFixed(1)}${result.sampled ? `   (${result.sampled})` : ''}`);
      }
    }
  }
  console.log(`\nload average at the end: ${load()}`);

  const targets = present.filter((e) => e !== BASELINE && !e.startsWith('torch'));
  const anchor = present.find((e) => e.startsWith('torch'));
  const ratioColumns: { title: string; of: (r: Map<string, Result>) => string }[] = [];
  for (const target of targets) {
    if (present.includes(BASELINE)) ratioColumns.push({ title: `${BASELINE} ÷ ${target}`, of: (r) => ratio(r.get(BASELINE), r.get(target)) });
    if (anchor) ratioColumns.push({ title: `${anchor} ÷ ${target}`, of: (r) => ratio(r.get(anchor), r.get(target)) });
  }
  if (targets.length === 0 && anchor && present.includes(BASELINE)) ratioColumns.push({ title: `${BASELINE} ÷ ${anchor}`, of: (r) => ratio(r.get(BASELINE), r.get(anchor)) });
  const firstColumns = targets.map((t) => `${t} first call`);

  if (rows.length > 0) {
    const titles = [...present, ...firstColumns, ...ratioColumns.map((c) => c.title), 'load'];
    console.log(`\n| net | work | settings | ${titles.join(' | ')} |`);
    console.log(`|---|---|---|${titles.map(() => '---:').join('|')}|`);
    for (const { net, work, results } of rows) {
      const settings = work === 'forward' ? `batch ${FORWARD_BATCH}, ms per batch` : `${SETTINGS[work].shown}; per image`;
      const firsts = targets.map((t) => {
        const r = results.get(t);
        return r?.firstMs !== undefined ? format(r.firstMs) : '—';
      });
      const loads = [...results.values()].map((r) => r.load ?? 0);
      const cells = [...present.map((e) => cell(results.get(e))), ...firsts, ...ratioColumns.map((c) => c.of(results)), `${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`];
      console.log(`| ${net} | ${work} | ${settings} | ${cells.join(' | ')} |`);
    }
    console.log(`\nRatios are per image (forward: per batch of 8, a smaller batch scaled up). † one call (over 10 s), first call included; others: median of 3 calls (forward: 5) after a first call. onnx rows: the first call builds the sessions (its time is shown apart); a slow one is followed by one steady call, which is what the table shows. ‡ timed on some batches of perturbed inputs and extrapolated (see the log). first call: the whole first call (all its images), sessions built inside it. load: the 1-minute load average at the end of the row's engines, on ${os.availableParallelism()} cores (above the core count, the rows shared the CPU with other work).`);
    for (const engine of present) console.log(`${engine}: ${devices.get(engine)}`);
  }

  if (process.argv.includes('--quickstart')) {
    await quickstart(listArg('--quickstart', ['auto', 'onnx', 'onnx:cpu', 'wasm', 'cpu', 'webgpu', 'tensorflow', 'onnx:webgpu', 'onnx:cuda'], ['auto']), Number(argValue('--quickstart-timeout') ?? 1800));
  }
}

const childWork = argValue('--child');
if (childWork !== undefined || process.argv.includes('--child')) {
  await runChild(argValue('--engine') ?? BASELINE, (argValue('--net') ?? 'mobilenet-v2') as Net, (childWork ?? '--probe') as Work | '--probe', {
    batch: Number(argValue('--batch') ?? FORWARD_BATCH),
    threads: Number(argValue('--threads') ?? 2),
    sample: Number(argValue('--sample') ?? 0),
    allowSoftwareAdapter: process.argv.includes('--allow-software'),
  });
} else {
  await main();
}
