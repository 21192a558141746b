/**
 * One training step (forward, backward, SGD update) per engine, taken
 * through the Trainer the train stage uses: createTrainer (train-loop.ts)
 * with the engine the child process started — OnnxTrainer (ONNX Runtime
 * sessions over flat weight vectors) on onnx:*, TfjsTrainer (the model's
 * tfjs variables) on wasm and the other tfjs backends — so the bench times
 * exactly what `salgrid train` runs. SGD with momentum 0.9 and lr 0.001
 * (PyTorch's semantics, train-loop.ts), seeded random images, labels
 * (i·7 + 3) mod 4. Two warm-up steps (on onnx the first builds the
 * sessions; shown as "first step"; --warmup N to change), then the median of
 * N timed steps. Two, because onnx:cpu's second step is still 2–4× its
 * steady one (ONNX Runtime's arena is still growing; measured here on
 * MobileNetV2 and GoogLeNet at batch 8), while wasm and torch are steady
 * after one.
 *
 * Engines (`--engines`, default onnx:cpu,wasm,torch): `onnx:cpu` is
 * salgrid's ONNX Runtime engine with `--threads` intra-op threads (default
 * 2); `wasm` is TensorFlow.js on WebAssembly (single-threaded), the
 * baseline; `torch` is the anchor, a HAND-WRITTEN PyTorch training step
 * (bench/anchors/torch_train.py: torchvision's nets, random weights,
 * cross_entropy, torch.optim.SGD, the same threads) on Debian's python3-torch
 * ($SALGRID_TORCH_PYTHON, /usr/bin/python3 or python3 on PATH). Also
 * accepted: onnx:webgpu, onnx:cuda, torch:cuda and the other tfjs backends
 * (webgpu, tensorflow, cpu), only when named.
 *
 * Sections:
 * 1. the small CNN at 64×64, batch 32, on every non-torch engine, with the
 *    ratio to wasm in the same run (median of 10 timed steps). tfjs's cpu
 *    backend is no longer a default row: it took about 130 s a step here
 *    (wasm about 1 s, onnx:cpu about 0.2–0.35 s); name it in --engines to
 *    time it anyway;
 * 2. the study nets (DenseNet201, GoogLeNet, MobileNetV2, ResNet101) at
 *    224×224, 4 classes, batch 8 on every engine (median of 3 timed steps).
 *    wasm's heap is capped at 4 GiB and an out-of-memory abort kills its
 *    module, so a row that runs out of memory is retried at batch 4, 2, 1
 *    in a fresh process. Then, per net, onnx's throughput (images/s, since
 *    wasm may run a smaller batch) against each other engine's;
 * 3. with --batch-memory: the study's own batches — MobileNetV2 at 32,
 *    ResNet101 and DenseNet201 at 16 — on every engine but wasm and cpu
 *    (warm-up, then 1 timed step, no smaller retry): s/step and memory.
 *
 * Every row runs in its own child process (the environment salgrid gives
 * its tensor workers, tensor-env.ts), which reports its peak resident memory
 * (process.resourceUsage().maxRSS; the anchor getrusage's ru_maxrss), so a
 * crash costs only its row and each row's memory is its own. Rows run
 * engine after engine for the same net, so machine drift hits all alike; a
 * row that outlives --timeout seconds (default 3600) is killed and reported.
 *
 * Run: node --import tsx bench/train.ts [--quick] [--engines onnx:cpu,wasm,torch]
 *        [--threads 2] [--batch-memory] [--nets smallcnn,mobilenetv2,…]
 *        [--warmup 2] [--timeout 3600] [--allow-software]
 *   --quick         1 timed step per row, and no ResNet101 or DenseNet201 in section 2
 *   --warmup        untimed steps before the timed ones (default 2)
 *   --nets          these nets only (smallcnn, mobilenetv2, googlenet, resnet101, densenet201), in every section
 *   --allow-software  let onnx:webgpu and webgpu run on a software adapter: checks the bench, gives no figures
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { tensorWorkerEnv } from '../src/core/exec/tensor-env.js';
import { BACKEND_NAMES, initBackend, type BackendName } from '../src/core/tensor/backend.ts';
import { engineChoice } from '../src/core/tensor/engine-choice.ts';
import { createTrainer } from '../src/core/tensor/train-loop.ts';
import type { ResolvedOptimizer } from '../src/core/tensor/trainer.ts';
import { buildDenseNet, denseNetPreset } from '../src/plugins/architectures/densenet-model.ts';
import { buildGoogLeNet } from '../src/plugins/architectures/googlenet-model.ts';
import { buildMobileNetV2 } from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { buildResNet, resNetPreset } from '../src/plugins/architectures/resnet-model.ts';
import { buildSmallCnn } from '../src/plugins/architectures/small-cnn-model.ts';
import { findTorch } from './torch-python.ts';

const SELF = fileURLToPath(import.meta.url);
const CHILD_ARGS = SELF.endsWith('.ts') ? ['--import', 'tsx', SELF] : [SELF];
const TORCH_SCRIPT = path.join(path.dirname(SELF), 'anchors', 'torch_train.py');

// ---------------------------------------------------------------- settings

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = argv.indexOf(name);
  return at >= 0 ? argv[at + 1] : undefined;
};
const quick = argv.includes('--quick');
const allowSoftwareAdapter = argv.includes('--allow-software');
const batchMemory = argv.includes('--batch-memory');
const threads = Number(option('--threads') ?? 2);
const timeoutS = Number(option('--timeout') ?? 3600);
const warmup = Number(option('--warmup') ?? 2);
if (!Number.isInteger(warmup) || warmup < 1) throw new Error(`--warmup must be a whole number ≥ 1, got ${option('--warmup')}`);
if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads must be a whole number ≥ 1, got ${option('--threads')}`);
if (!(timeoutS > 0)) throw new Error(`--timeout must be a number of seconds > 0, got ${option('--timeout')}`);

const CLASSES = 4;
/** What a manifest's `sgd: {learningRate: 0.001, momentum: 0.9}` resolves to. */
const SGD: ResolvedOptimizer = { kind: 'sgd', learningRate: 0.001, momentum: 0.9, nesterov: false, beta1: 0, beta2: 0, epsilon: 0, weightDecay: 0 };
const BATCHES = [8, 4, 2, 1];
const SMALL_BATCH = 32;
const WASM_HEAP_CAP_MIB = 4096;

const TORCH_ENGINES = ['torch', 'torch:cuda'] as const;
type TorchEngine = (typeof TORCH_ENGINES)[number];
type Engine = BackendName | TorchEngine;
const isTorch = (engine: string): engine is TorchEngine => (TORCH_ENGINES as readonly string[]).includes(engine);
const isBackend = (engine: string): engine is BackendName => (BACKEND_NAMES as readonly string[]).includes(engine);
/** tfjs backends that run on the CPU: no study batch fits wasm's heap, and cpu would take hours. */
const CPU_TFJS: readonly Engine[] = ['wasm', 'cpu'];

interface Architecture {
  name: string;
  size: number;
  build: () => tf.LayersModel;
}

const NETS = {
  smallcnn: { name: 'small CNN', size: 64, build: () => buildSmallCnn({ numClasses: CLASSES, inputSize: [64, 64] }) },
  mobilenetv2: { name: 'MobileNetV2', size: 224, build: () => buildMobileNetV2({ numClasses: CLASSES }) },
  googlenet: { name: 'GoogLeNet', size: 224, build: () => buildGoogLeNet({ numClasses: CLASSES }) },
  resnet101: { name: 'ResNet101', size: 224, build: () => buildResNet(resNetPreset(101, { numClasses: CLASSES })) },
  densenet201: { name: 'DenseNet201', size: 224, build: () => buildDenseNet(denseNetPreset(201, { numClasses: CLASSES })) },
} satisfies Record<string, Architecture>;
type NetKey = keyof typeof NETS;
const isNet = (key: string): key is NetKey => Object.hasOwn(NETS, key);
const STUDY: NetKey[] = ['mobilenetv2', 'googlenet', 'resnet101', 'densenet201'];
/** The study's own batch sizes, for section 3. */
const BATCH_MEMORY: { key: NetKey; batch: number }[] = [
  { key: 'mobilenetv2', batch: 32 },
  { key: 'resnet101', batch: 16 },
  { key: 'densenet201', batch: 16 },
];

/** What a child reports. */
interface Measurement {
  /** Median seconds per timed step. */
  seconds: number;
  /** Every timed step, in seconds. */
  steps: number[];
  /** The first warm-up step, in seconds (onnx: includes building the sessions). */
  firstSeconds: number;
  /** The child's peak resident memory, KiB. */
  maxRSS: number;
  device: string;
  /** The wasm module's heap at the end, MiB (it never shrinks, so this is its peak). */
  heapMiB?: number;
  /** tfjs tensors left behind after everything was disposed (should be 0). */
  leaked?: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

// ---------------------------------------------------------------- child: one engine × net × batch

/** Size of the wasm module's linear memory, if the active tfjs backend is wasm. */
function wasmHeapMiB(): number | undefined {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const bytes = backend.wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? undefined : bytes / 2 ** 20;
}

/** `warmup` untimed steps, then `runs` timed steps of the trainer the train stage would create here. */
async function measureSteps(arch: Architecture, batch: number, runs: number): Promise<Pick<Measurement, 'seconds' | 'steps' | 'firstSeconds' | 'leaked'>> {
  const tensorsBefore = tf.memory().numTensors;
  const model = arch.build();
  const trainer = createTrainer(model, SGD, engineChoice());
  const x = tf.randomNormal([batch, arch.size, arch.size, 3], 0, 1, 'float32', 7) as tf.Tensor4D;
  const labels = Int32Array.from({ length: batch }, (_, i) => (i * 7 + 3) % CLASSES);
  const lastWeight = model.trainableWeights[model.trainableWeights.length - 1];

  const step = async (seed: number): Promise<number> => {
    const started = performance.now();
    const measured = await trainer.step(x, labels, { headOnly: false, learningRate: SGD.learningRate, seed });
    // tfjs on a GPU: the statistics wait for the loss; reading an updated weight waits for the update too.
    if (trainer.engine === 'tfjs') await lastWeight.read().data();
    const seconds = (performance.now() - started) / 1000;
    const loss = measured.weightedSum / measured.weightSum;
    if (!Number.isFinite(loss)) throw new Error(`step ${seed} gave a loss of ${loss}`);
    return seconds;
  };

  let measured: { seconds: number; steps: number[]; firstSeconds: number };
  try {
    const firstSeconds = await step(0);
    for (let i = 1; i < warmup; i++) await step(i);
    const steps: number[] = [];
    for (let i = 0; i < runs; i++) steps.push(await step(warmup + i));
    measured = { seconds: median(steps), steps, firstSeconds };
  } finally {
    await trainer.dispose();
    x.dispose();
    model.dispose();
  }
  return { ...measured, leaked: tf.memory().numTensors - tensorsBefore };
}

async function child(at: number): Promise<never> {
  const [engine, key, batch, runs] = [argv[at + 1], argv[at + 2], Number(argv[at + 3]), Number(argv[at + 4])];
  try {
    if (!isBackend(engine)) throw new Error(`unknown backend ${engine}`);
    if (!isNet(key)) throw new Error(`unknown net ${key}`);
    const info = await initBackend(engine, { threads, allowSoftwareAdapter });
    const device = info.threads === undefined ? info.device : `${info.device}, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
    const result = await measureSteps(NETS[key], batch, runs);
    const row: Measurement = { ...result, device, maxRSS: process.resourceUsage().maxRSS, heapMiB: wasmHeapMiB() };
    console.log(`ROW ${JSON.stringify(row)}`);
    process.exit(0);
  } catch (error) {
    // An aborted wasm module keeps its memory readable: a heap near 4 GiB says the abort was an allocation that failed.
    const message = String((error as Error)?.message ?? error).split('\n')[0];
    console.log(`FAILED ${JSON.stringify({ message, heapMiB: wasmHeapMiB(), maxRSS: process.resourceUsage().maxRSS })}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- parent

interface Row extends Measurement {
  engine: Engine;
  key: NetKey;
  batch: number;
}

interface Outcome {
  row?: Row;
  failure?: string;
  outOfMemory: boolean;
}

/** A row of a section: measured (perhaps at a smaller batch), or why not. */
interface Cell {
  engine: Engine;
  key: NetKey;
  row?: Row;
  /** Batches that ran out of memory before `row`'s. */
  didNotFit: number[];
  failure?: string;
}


const OUT_OF_MEMORY =
  /out of memory|OOM|Cannot enlarge memory|Array buffer allocation failed|heap limit|memory access out of bounds|bad_alloc|Cannot allocate|Failed to allocate|can't allocate|MemoryError/i;

/** Runs one row in a fresh process: a Node child on a salgrid backend, or the PyTorch anchor. */
function runChild(engine: Engine, key: NetKey, batch: number, runs: number, torchPython?: string): Promise<Outcome> {
  const [command, args, env] = isTorch(engine)
    ? [torchPython!, [TORCH_SCRIPT, '--arch', key, '--batch', String(batch), '--steps', String(runs), '--warmup', String(warmup), '--threads', String(threads), ...(engine === 'torch:cuda' ? ['--device', 'cuda'] : [])], process.env]
    : [
        process.execPath,
        [...CHILD_ARGS, '--child', engine, key, String(batch), String(runs), '--warmup', String(warmup), '--threads', String(threads), ...(allowSoftwareAdapter ? ['--allow-software'] : [])],
        tensorWorkerEnv(process.env),
      ];
  return new Promise((resolve) => {
    const proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      timedOut = true;
      proc.kill('SIGKILL');
    }, timeoutS * 1000);
    const finish = (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      clearTimeout(timer);
      const lines = stdout.split('\n');
      const rowLine = lines.find((l) => l.startsWith('ROW '));
      if (rowLine) {
        resolve({ row: { engine, key, batch, ...(JSON.parse(rowLine.slice(4)) as Measurement) }, outOfMemory: false });
        return;
      }
      if (timedOut) {
        resolve({ failure: `> ${timeoutS} s (killed)`, outOfMemory: false });
        return;
      }
      const failedLine = lines.find((l) => l.startsWith('FAILED '));
      const failed = failedLine ? (JSON.parse(failedLine.slice(7)) as { message: string; heapMiB?: number; maxRSS?: number }) : undefined;
      const lastError = stderr.trim().split('\n').filter((l) => l.trim() !== '' && !/^\s+at /.test(l)).slice(-1)[0] ?? '';
      const failure = spawnError
        ? spawnError.message
        : failed
          ? `${failed.message}${engine === 'wasm' && failed.heapMiB !== undefined ? ` with the wasm heap at ${fmt(failed.heapMiB, 0)} MiB` : ''}`
          : `process ended (${signal ?? `exit ${code}`})${lastError ? `: ${lastError}` : ''}`;
      // wasm aborts without a message when an allocation fails; its heap, still readable, is then at the 4 GiB cap. SIGKILL: the kernel's OOM killer.
      const outOfMemory = (failed?.heapMiB ?? 0) >= WASM_HEAP_CAP_MIB - 64 || OUT_OF_MEMORY.test(`${failure}\n${stderr}`) || signal === 'SIGKILL';
      resolve({ failure: failure.slice(0, 300), outOfMemory });
    };
    proc.on('error', (error) => finish(null, null, error));
    proc.on('close', (code, signal) => finish(code, signal));
  });
}

/** A row at the first of `batches` that fits, each in a fresh process; progress printed as it goes. */
async function measureCell(engine: Engine, key: NetKey, batches: readonly number[], runs: number, torch: ReturnType<typeof findTorch> | undefined): Promise<Cell> {
  const name = NETS[key].name;
  const cell: Cell = { engine, key, didNotFit: [] };
  if (isTorch(engine) && torch && 'reason' in torch) {
    cell.failure = torch.reason;
    console.log(`${name} on ${engine}: not measured (${torch.reason})`);
    return cell;
  }
  const python = torch && 'python' in torch ? torch.python : undefined;
  for (const batch of batches) {
    const started = performance.now();
    const outcome = await runChild(engine, key, batch, runs, python);
    const took = `${fmt((performance.now() - started) / 1000)} s in all`;
    if (outcome.row) {
      cell.row = outcome.row;
      console.log(`${name} on ${engine}, batch ${batch}: ${fmt(outcome.row.seconds, 3)} s/step, peak ${memory(outcome.row.maxRSS)} (${took})`);
      return cell;
    }
    const smaller = batches[batches.indexOf(batch) + 1];
    if (!outcome.outOfMemory || smaller === undefined) {
      cell.failure = `batch ${batch}: ${outcome.failure}`;
      console.log(`${name} on ${engine}, batch ${batch}: failed (${outcome.failure}) after ${took}`);
      return cell;
    }
    cell.didNotFit.push(batch);
    console.log(`${name} on ${engine}: batch ${batch} ran out of memory after ${took} (${outcome.failure}); trying ${smaller}`);
  }
  return cell;
}

// ---------------------------------------------------------------- formatting

function fmt(n: number, digits = 1): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** KiB as MiB below 1000 MiB, else GiB. */
function memory(kib: number): string {
  const mib = kib / 1024;
  return mib < 1000 ? `${fmt(mib, 0)} MiB` : `${fmt(mib / 1024, 2)} GiB`;
}

const perSecond = (row: Row): number => row.batch / row.seconds;
/** Images per second, with two decimals below 10. */
const rate = (row: Row): string => fmt(perSecond(row), perSecond(row) < 10 ? 2 : 1);
const HEADER = 'engine       device                                   batch   s / step   images/s   first step  peak memory';
function line(row: Row): string {
  return [
    row.engine.padEnd(12),
    row.device.slice(0, 40).padEnd(40),
    String(row.batch).padStart(5),
    fmt(row.seconds, 3).padStart(10),
    rate(row).padStart(10),
    `${fmt(row.firstSeconds, 2)} s`.padStart(12),
    memory(row.maxRSS).padStart(12),
  ].join(' ');
}
function notes(cell: Cell): string {
  const row = cell.row!;
  const parts = [
    row.engine === 'wasm' && row.heapMiB !== undefined ? `wasm heap ${fmt(row.heapMiB, 0)} MiB` : '',
    cell.didNotFit.length ? `batch ${cell.didNotFit.join(', ')} out of memory` : '',
    row.leaked ? `LEAKED ${row.leaked} tensors` : '',
    row.steps.length > 1 ? `steps ${row.steps.map((s) => fmt(s, 2)).join(', ')} s` : '',
  ].filter(Boolean);
  return parts.length ? `   ${parts.join('; ')}` : '';
}
const notMeasured = (cell: Cell): string => `${cell.engine.padEnd(12)} not measured: ${cell.failure ?? 'unknown'}`;

// ---------------------------------------------------------------- main

async function parent(): Promise<void> {
  const engines: Engine[] = [];
  for (const name of (option('--engines') ?? 'onnx:cpu,wasm,torch').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!isTorch(name) && !isBackend(name)) throw new Error(`--engines: unknown engine ${name} (known: ${[...BACKEND_NAMES, ...TORCH_ENGINES].join(', ')})`);
    if (!engines.includes(name)) engines.push(name);
  }
  const chosen = option('--nets')?.split(',').map((s) => s.trim());
  for (const key of chosen ?? []) if (!isNet(key)) throw new Error(`--nets: unknown net ${key} (known: ${Object.keys(NETS).join(', ')})`);
  const selected = (key: NetKey) => !chosen || chosen.includes(key);
  const studyNets = chosen ? STUDY.filter(selected) : quick ? STUDY.slice(0, 2) : STUDY;
  const smallEngines = selected('smallcnn') ? engines.filter((e) => !isTorch(e)) : [];
  const memoryRows = batchMemory ? BATCH_MEMORY.filter((r) => selected(r.key)) : [];
  const memoryEngines = engines.filter((e) => !CPU_TFJS.includes(e));
  const runs = (n: number) => (quick ? 1 : n);

  const torch = engines.some(isTorch) ? findTorch() : undefined;
  const quickNote = quick ? ` (--quick: 1 timed step${chosen ? '' : ', no ResNet101 or DenseNet201'})` : '';
  console.log(`engines: ${engines.join(', ')}; onnx threads and torch threads: ${threads}${quickNote}`);
  if (torch) console.log(`torch anchor: ${'version' in torch ? torch.version : torch.reason}`);

  const small: Cell[] = [];
  for (const engine of smallEngines) small.push(await measureCell(engine, 'smallcnn', [SMALL_BATCH], runs(10), torch));

  const study: Cell[] = [];
  for (const key of studyNets) for (const engine of engines) study.push(await measureCell(engine, key, BATCHES, runs(3), torch));

  const atStudyBatch: Cell[] = [];
  for (const { key, batch } of memoryRows) for (const engine of memoryEngines) atStudyBatch.push(await measureCell(engine, key, [batch], 1, torch));

  // ---------------------------------------------------------------- report

  const warmups = `${warmup} warm-up step${warmup > 1 ? 's' : ''}`;
  const timed = (n: number) => `${warmups}, ${quick ? '1 timed step' : `median of ${n} timed steps`}`;
  const trainer = (engine: Engine) => (isTorch(engine) ? 'hand-written PyTorch' : engine.startsWith('onnx') ? 'OnnxTrainer' : 'TfjsTrainer');
  console.log(`\nEach step: ${engines.map((e) => `${e} = ${trainer(e)}`).join(', ')}; SGD momentum 0.9, lr 0.001; peak memory = the row's process (maxRSS)`);

  if (small.length) {
    const wasm = small.find((c) => c.engine === 'wasm')?.row;
    console.log(`\nSmall CNN, 64×64, batch ${SMALL_BATCH} (${timed(10)}${wasm ? '; ratio to wasm in this run' : ''})`);
    console.log(`${HEADER}${wasm ? '  ratio to wasm' : ''}`);
    for (const cell of small) {
      if (!cell.row) console.log(notMeasured(cell));
      else console.log(`${line(cell.row)}${wasm ? `${fmt(wasm.seconds / cell.row.seconds, 1)}×`.padStart(15) : ''}${notes(cell)}`);
    }
  }

  if (study.length) {
    console.log(`\nStudy architectures, 224×224, 4 classes (${timed(3)}; batch 8, or the largest of 4, 2, 1 that fits)`);
    console.log(`architecture  ${HEADER}`);
    for (const cell of study) console.log(`${NETS[cell.key].name.padEnd(13)} ${cell.row ? `${line(cell.row)}${notes(cell)}` : notMeasured(cell)}`);

    console.log('\nPer architecture (throughput per image, same run):');
    const onnxEngines = engines.filter((e) => e.startsWith('onnx'));
    for (const key of studyNets) {
      const name = NETS[key].name;
      const cells = study.filter((c) => c.key === key);
      if (!onnxEngines.length) {
        console.log(`  ${name}: ${cells.map((c) => (c.row ? `${c.engine} ${fmt(c.row.seconds, 2)} s/step = ${rate(c.row)} images/s (batch ${c.row.batch})` : `${c.engine} not measured`)).join('; ')}`);
        continue;
      }
      for (const engine of onnxEngines) {
        const base = cells.find((c) => c.engine === engine)!;
        if (!base.row) {
          console.log(`  ${name}: ${engine} not measured (${base.failure})`);
          continue;
        }
        const own = base.row;
        const others = cells.filter((c) => c.engine !== engine);
        const ratios = others.map((c) => {
          if (!c.row) return `${c.engine} not measured`;
          return `${fmt(perSecond(own) / perSecond(c.row), 1)}× ${c.engine}${c.row.batch !== own.batch ? ` (batch ${c.row.batch})` : ''}`;
        });
        const memories = others.filter((c) => c.row).map((c) => `${c.engine} ${memory(c.row!.maxRSS)}`);
        const parts = [
          `${engine} ${fmt(own.seconds, 2)} s/step = ${rate(own)} images/s${own.batch !== 8 ? ` (batch ${own.batch})` : ''}`,
          ...ratios,
          `peak memory ${memory(own.maxRSS)}${memories.length ? ` (${memories.join(', ')})` : ''}`,
        ];
        console.log(`  ${name}: ${parts.join('; ')}`);
      }
    }
  }

  if (batchMemory) {
    console.log(`\nThe study's batch sizes (--batch-memory; ${warmups}, 1 timed step, no smaller retry; not on ${CPU_TFJS.join(' or ')})`);
    console.log(`architecture  ${HEADER}`);
    for (const cell of atStudyBatch) console.log(`${NETS[cell.key].name.padEnd(13)} ${cell.row ? `${line(cell.row)}${notes(cell)}` : `${notMeasured(cell)} (batch ${BATCH_MEMORY.find((r) => r.key === cell.key)!.batch})`}`);
  }
}

const childAt = argv.indexOf('--child');
if (childAt >= 0) await child(childAt);
await parent();
process.exit(0);
