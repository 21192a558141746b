/**
 * One training step (forward, backward, SGD update) in images/s, on every
 * backend present:
 * - the study's four architectures (DenseNet201, GoogLeNet, MobileNetV2,
 *   ResNet101) at 224×224, 4-class head, on wasm and any GPU backend
 *   (tensorflow through tfjs-node(-gpu), webgpu with a hardware adapter);
 *   batch 8, or the largest of 4, 2, 1 that fits (wasm's heap is capped at
 *   4 GiB, and an out-of-memory abort kills its module, so each
 *   architecture × backend × batch runs in a fresh child process);
 * - the small CNN at 64×64, batch 32, on every backend including cpu, with
 *   the ratio to cpu measured in the same run.
 *
 * The step is train-loop.ts's: its FusedBatchNorm gradient
 * (registerBatchNormGradient), tf.variableGrads over model.apply(x,
 * {training: true}) with its mean softmax cross-entropy, then its
 * PyTorch-style SGD (buf = momentum·buf + g, w −= lr·buf; momentum 0.9,
 * lr 0.001), on random images and labels. trainModel works on whole epochs
 * with checkpoints, so the step is written out here rather than timed through
 * it. One warm-up step, then the median of N timed steps (3 for the big nets,
 * 10 for the small CNN; --quick: 1, and no ResNet101 or DenseNet201).
 *
 * Run: node --import tsx bench/train.ts [--quick] [--allow-software]
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../src/core/tensor/backend.ts';
import { registerBatchNormGradient } from '../src/core/tensor/batch-norm-gradient.ts';
import { buildDenseNet, denseNetPreset } from '../src/plugins/architectures/densenet-model.ts';
import { buildGoogLeNet } from '../src/plugins/architectures/googlenet-model.ts';
import { buildMobileNetV2 } from '../src/plugins/architectures/mobilenet-v2-model.ts';
import { buildResNet, resNetPreset } from '../src/plugins/architectures/resnet-model.ts';
import { buildSmallCnn } from '../src/plugins/architectures/small-cnn-model.ts';

const quick = process.argv.includes('--quick');
registerBatchNormGradient(); // as trainModel does
const allowSoftwareAdapter = process.argv.includes('--allow-software');
const CLASSES = 4;
const SGD = { learningRate: 0.001, momentum: 0.9 };
const BATCHES = [8, 4, 2, 1];
const WASM_HEAP_CAP_MIB = 4096;
const perSecond = (row: { seconds: number; batch: number }) => row.batch / row.seconds;
const fmt = (n: number, digits = 1) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

interface Architecture {
  name: string;
  size: number;
  build: () => tf.LayersModel;
}

const ARCHITECTURES: Record<string, Architecture> = {
  mobilenetv2: { name: 'MobileNetV2', size: 224, build: () => buildMobileNetV2({ numClasses: CLASSES }) },
  googlenet: { name: 'GoogLeNet', size: 224, build: () => buildGoogLeNet({ numClasses: CLASSES }) },
  resnet101: { name: 'ResNet101', size: 224, build: () => buildResNet(resNetPreset(101, { numClasses: CLASSES })) },
  densenet201: { name: 'DenseNet201', size: 224, build: () => buildDenseNet(denseNetPreset(201, { numClasses: CLASSES })) },
};
const BIG = quick ? ['mobilenetv2', 'googlenet'] : ['mobilenetv2', 'googlenet', 'resnet101', 'densenet201'];
const SMALL: Architecture = { name: 'small CNN', size: 64, build: () => buildSmallCnn({ numClasses: CLASSES, inputSize: [64, 64] }) };

interface Measurement {
  /** Median seconds per step. */
  seconds: number;
  /** Every timed step, in seconds. */
  steps: number[];
  /** wasm only: the module's heap after the run, in MiB (it never shrinks, so this is its peak). */
  heapMiB?: number;
  /** Tensors left behind after everything was disposed (should be 0). */
  leaked: number;
}

/** Size of the wasm module's linear memory, if the active backend is wasm. */
function wasmHeapMiB(): number | undefined {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const bytes = backend.wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? undefined : bytes / 2 ** 20;
}

/** One warm-up step then `runs` timed steps of train-loop.ts's training step. */
async function measureStep(arch: Architecture, batch: number, runs: number): Promise<Measurement> {
  const tensorsBefore = tf.memory().numTensors;
  const model = arch.build();
  const x = tf.randomNormal([batch, arch.size, arch.size, 3], 0, 1, 'float32', 7);
  const y = tf.tensor1d(Int32Array.from({ length: batch }, (_, i) => (i * 7 + 3) % CLASSES), 'int32');
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const momentum = variables.map((v) => tf.tidy(() => tf.variable(tf.zeros(v.shape), false)));
  const last = variables[variables.length - 1];

  const step = async (): Promise<void> => {
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => {
        const logits = model.apply(x, { training: true }) as tf.Tensor2D;
        // Mean softmax cross-entropy, as train-loop.ts computes it without class weights.
        return tf.mean(tf.neg(tf.sum(tf.mul(tf.oneHot(y, CLASSES), tf.logSoftmax(logits)), 1))) as tf.Scalar;
      }, variables);
      variables.forEach((w, i) => {
        const buf = tf.add(tf.mul(momentum[i], SGD.momentum), grads[w.name]);
        momentum[i].assign(buf);
        w.assign(tf.sub(w, tf.mul(buf, SGD.learningRate)));
      });
      return value;
    });
    // Reading the loss and an updated weight waits for the whole step on asynchronous (GPU) backends.
    await Promise.all([loss.data(), last.data()]);
    loss.dispose();
  };

  const steps: number[] = [];
  try {
    await step(); // warm-up: kernel registration, shader compilation, first allocations
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await step();
      steps.push((performance.now() - started) / 1000);
    }
  } finally {
    tf.dispose([x, y, ...momentum]);
    model.dispose();
  }
  const sorted = [...steps].sort((a, b) => a - b);
  return { seconds: sorted[Math.floor(sorted.length / 2)], steps, heapMiB: wasmHeapMiB(), leaked: tf.memory().numTensors - tensorsBefore };
}

// ---------------------------------------------------------------- child: one architecture × backend × batch

const childAt = process.argv.indexOf('--child');
if (childAt > 0) {
  const [backend, key, batch] = [process.argv[childAt + 1] as BackendName, process.argv[childAt + 2], Number(process.argv[childAt + 3])];
  try {
    const info = await initBackend(backend, { allowSoftwareAdapter });
    const result = await measureStep(ARCHITECTURES[key], batch, quick ? 1 : 3);
    console.log(`ROW ${JSON.stringify({ ...result, device: info.device })}`);
    process.exit(0);
  } catch (error) {
    // An aborted wasm module keeps its memory readable: a heap near 4 GiB says the abort was an allocation that failed.
    const heap = wasmHeapMiB();
    console.log(`FAILED ${JSON.stringify({ message: String((error as Error)?.message ?? error).split('\n')[0], heapMiB: heap })}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------- parent

interface Row extends Measurement {
  backend: string;
  device: string;
  arch: string;
  batch: number;
}


const present: { name: BackendName; device: string }[] = [];
for (const name of ['cpu', 'wasm', 'webgpu', 'tensorflow'] as const) {
  try {
    const info = await initBackend(name, { allowSoftwareAdapter });
    present.push({ name, device: info.device });
  } catch (error) {
    console.log(`${name}: not present (${(error as Error).message.split(';')[0]})`);
  }
}
console.log(`backends present: ${present.map((b) => b.name).join(', ')}${quick ? ' (--quick: 1 timed step, no ResNet101 or DenseNet201)' : ''}`);

// Small CNN, 64×64, batch 32, in this process on every backend.
const small: Row[] = [];
for (const backend of present) {
  await tf.setBackend(backend.name);
  const started = performance.now();
  const result = await measureStep(SMALL, 32, quick ? 1 : 10);
  small.push({ backend: backend.name, device: backend.device, arch: SMALL.name, batch: 32, ...result });
  console.log(`small CNN on ${backend.name}: ${fmt(result.seconds, 3)} s/step (${fmt((performance.now() - started) / 1000)} s in all)`);
}

interface ChildOutcome {
  row?: Row;
  failure?: string;
  outOfMemory: boolean;
}

/** Runs one measurement in a fresh process (an out-of-memory abort takes the wasm module down with it). */
function runChild(backend: BackendName, key: string, batch: number): Promise<ChildOutcome> {
  const args = [...process.execArgv, process.argv[1], '--child', backend, key, String(batch), ...(quick ? ['--quick'] : []), ...(allowSoftwareAdapter ? ['--allow-software'] : [])];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('close', (code, signal) => {
      const lines = stdout.split('\n');
      const row = lines.find((l) => l.startsWith('ROW '));
      if (row) {
        const measured = JSON.parse(row.slice(4)) as Measurement & { device: string };
        resolve({ row: { backend, arch: ARCHITECTURES[key].name, batch, ...measured }, outOfMemory: false });
        return;
      }
      const failedLine = lines.find((l) => l.startsWith('FAILED '));
      const failed = failedLine ? (JSON.parse(failedLine.slice(7)) as { message: string; heapMiB?: number }) : undefined;
      const failure = failed
        ? `${failed.message}${failed.heapMiB === undefined ? '' : ` with the wasm heap at ${fmt(failed.heapMiB, 0)} MiB`}`
        : `exit ${code ?? signal}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      // wasm aborts without a message when an allocation fails; its heap, still readable, is then at the 4 GiB cap.
      const outOfMemory =
        (failed?.heapMiB ?? 0) >= WASM_HEAP_CAP_MIB - 64 || /out of memory|OOM|Cannot enlarge memory|Array buffer allocation failed|heap limit/i.test(failure + stderr) || signal === 'SIGKILL';
      resolve({ failure: failure.slice(0, 300), outOfMemory });
    });
  });
}

const big: Row[] = [];
const notRun: { backend: string; arch: string; reason: string }[] = [];
const oom: { backend: string; arch: string; batch: number; failure: string }[] = [];
for (const backend of present.filter((b) => b.name !== 'cpu')) {
  for (const key of BIG) {
    const arch = ARCHITECTURES[key];
    let done = false;
    for (const batch of BATCHES) {
      const started = performance.now();
      const outcome = await runChild(backend.name, key, batch);
      const took = `${fmt((performance.now() - started) / 1000)} s`;
      if (outcome.row) {
        big.push(outcome.row);
        console.log(`${arch.name} on ${backend.name}, batch ${batch}: ${fmt(outcome.row.seconds, 2)} s/step (${took} in all)`);
        done = true;
        break;
      }
      if (!outcome.outOfMemory) {
        notRun.push({ backend: backend.name, arch: arch.name, reason: `batch ${batch} failed: ${outcome.failure}` });
        console.log(`${arch.name} on ${backend.name}, batch ${batch}: failed (${outcome.failure}) after ${took}`);
        done = true;
        break;
      }
      console.log(`${arch.name} on ${backend.name}: batch ${batch} ran out of memory after ${took} (${outcome.failure})${batch > 1 ? `; trying ${batch / 2}` : ''}`);
      oom.push({ backend: backend.name, arch: arch.name, batch, failure: outcome.failure ?? '' });
    }
    if (!done) notRun.push({ backend: backend.name, arch: arch.name, reason: 'out of memory even at batch 1' });
  }
}

// ---------------------------------------------------------------- report

const runs = (n: number) => (quick ? '1 timed step' : `median of ${n} timed steps`);
const header = 'backend      device                                   batch   s / step   images/s';
const line = (row: Row, extra = '') =>
  `${row.backend.padEnd(12)} ${row.device.slice(0, 40).padEnd(40)} ${String(row.batch).padStart(5)} ${fmt(row.seconds, 3).padStart(10)} ${fmt(perSecond(row)).padStart(10)}${extra}`;
const heap = (row: Row) => (row.heapMiB === undefined ? '' : `   wasm heap ${fmt(row.heapMiB, 0)} MiB`);
const leak = (row: Row) => (row.leaked === 0 ? '' : `   LEAKED ${row.leaked} tensors`);

const cpu = small.find((r) => r.backend === 'cpu');
console.log(`\nSmall CNN, 64×64, batch 32, SGD momentum 0.9 (${runs(10)}; ratio to the cpu backend in this run)`);
console.log(`${header}   ratio to cpu`);
for (const row of small) console.log(line(row, `${cpu ? `${(cpu.seconds / row.seconds).toFixed(1)}×`.padStart(15) : ''}${heap(row)}${leak(row)}`));

console.log(`\nStudy architectures, 224×224, 4 classes, SGD momentum 0.9 (${runs(3)}; batch 8, or the largest of 4, 2, 1 that fits)`);
console.log(`architecture  ${header}`);
for (const row of big) console.log(`${row.arch.padEnd(13)} ${line(row, `${heap(row)}${leak(row)}`)}`);
for (const row of notRun) console.log(`${row.arch.padEnd(13)} ${row.backend.padEnd(12)} not measured: ${row.reason}`);
for (const row of oom) console.log(`  (${row.arch} on ${row.backend} at batch ${row.batch}: out of memory — ${row.failure})`);

console.log('\nPer architecture:');
for (const key of BIG) {
  const name = ARCHITECTURES[key].name;
  const parts = [
    ...big
      .filter((r) => r.arch === name)
      .map((r) => {
        const tooBig = oom.filter((o) => o.arch === name && o.backend === r.backend).map((o) => o.batch);
        return `${r.backend} ${fmt(r.seconds, 2)} s/step at batch ${r.batch}${tooBig.length ? ` (batch ${tooBig.join(', ')} out of memory)` : ''} = ${fmt(perSecond(r), 2)} images/s (steps: ${r.steps.map((s) => fmt(s, 2)).join(', ')} s)`;
      }),
    ...notRun.filter((r) => r.arch === name).map((r) => `${r.backend} not measured (${r.reason})`),
  ];
  console.log(`  ${name}: ${parts.join('; ') || 'no backend to run it on'}`);
}
console.log('  small CNN: ' + small.map((r) => `${r.backend} ${fmt(r.seconds, 3)} s/step = ${fmt(perSecond(r))} images/s`).join('; '));
console.log(
  '\nFor comparison (not asserted): a PyTorch CPU training step on 2 cores here takes about 0.7 s for MobileNetV2 at batch 8 ' +
    '(about 11 images/s) and about 7 s for ResNet101.',
);
process.exit(0);
