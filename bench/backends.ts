/**
 * Forward, input gradient and training step, in images/s, on every backend
 * present: a small CNN at 64×64 on all of them with the ratio to the cpu
 * backend measured in the same run, and MobileNetV2 at 224×224, batch 8, on
 * every backend but cpu (there one input gradient takes minutes). Also lists
 * the weight-gradient kernels each backend runs for the input gradient
 * (there must be none). Run: node --import tsx bench/backends.ts
 * [--allow-software] [--skip-mobilenet]
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendName } from '../src/core/tensor/backend.ts';
import { inputGradient } from '../src/core/tensor/gradients.ts';
import { MOBILENET_V2_BLOCKS, makeNet, mobileNetV2, smallCnn, type Builder } from '../test/nets.ts';

const allowSoftwareAdapter = process.argv.includes('--allow-software');
const skipMobilenet = process.argv.includes('--skip-mobilenet');

async function median(runs: number, work: () => Promise<void>): Promise<number> {
  await work(); // warm-up: shader compilation, kernel registration, first allocations
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await work();
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

interface Row {
  backend: string;
  device: string;
  forward: number;
  gradient: number;
  step: number;
  filterKernels: string[];
}

async function measure(name: string, build: Builder, size: number, batch: number, runs: number): Promise<Omit<Row, 'backend' | 'device'>> {
  const net = makeNet(name, [size, size, 3], build);
  const x = tf.randomUniform([batch, size, size, 3], -1, 1, 'float32', 7);
  const target = Array.from({ length: batch }, (_, i) => i % 4);
  const classes = (net.model.outputs[0].shape as number[])[1] as number;
  const labels = tf.cast(tf.oneHot(tf.tensor1d(target, 'int32'), classes), 'float32');
  const optimizer = tf.train.adam(1e-3);
  const forward = await median(runs, async () => {
    const y = net.model.predict(x) as tf.Tensor;
    await y.data();
    y.dispose();
  });
  const gradient = await median(runs, async () => {
    const g = inputGradient(net.model, x, target);
    await g.data();
    g.dispose();
  });
  const profile = await tf.profile(async () => {
    const g = inputGradient(net.model, x, target);
    await g.data();
    g.dispose();
  });
  const filterKernels = [...new Set(profile.kernels.map((k) => k.name).filter((k) => /BackpropFilter/.test(k)))];
  const step = await median(runs, async () => {
    const loss = optimizer.minimize(() => tf.losses.softmaxCrossEntropy(labels, net.model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, true);
    await loss!.data();
    loss!.dispose();
  });
  tf.dispose([x, labels]);
  optimizer.dispose();
  net.model.dispose();
  return { forward, gradient, step, filterKernels };
}

const isChild = process.argv.includes('--child');
const present: { name: BackendName; device: string }[] = [];
for (const name of isChild ? [] : (['cpu', 'wasm', 'webgpu', 'tensorflow'] as const)) {
  try {
    const info = await initBackend(name, { allowSoftwareAdapter });
    present.push({ name, device: info.device });
  } catch (error) {
    console.log(`${name}: not present (${(error as Error).message.split(';')[0]})`);
  }
}

const perSecond = (ms: number, batch: number) => ((batch * 1000) / ms).toFixed(1);
function print(title: string, batch: number, rows: Row[], baseline?: Row): void {
  console.log(`\n${title}`);
  console.log('backend      device                                   forward img/s   input-grad img/s   train-step img/s   weight-grad kernels in input grad');
  for (const row of rows) {
    const ratio = (ms: number, base: number | undefined) => (baseline && base ? ` (${(base / ms).toFixed(1)}×)` : '');
    console.log(
      `${row.backend.padEnd(12)} ${row.device.slice(0, 40).padEnd(40)} ${`${perSecond(row.forward, batch)}${ratio(row.forward, baseline?.forward)}`.padStart(15)} ${`${perSecond(row.gradient, batch)}${ratio(row.gradient, baseline?.gradient)}`.padStart(18)} ${`${perSecond(row.step, batch)}${ratio(row.step, baseline?.step)}`.padStart(18)}   ${row.filterKernels.join(', ') || 'none'}`,
    );
  }
}

const small: Row[] = [];
for (const backend of isChild ? [] : present) {
  await tf.setBackend(backend.name);
  small.push({ backend: backend.name, device: backend.device, ...(await measure(`small_${backend.name}`, smallCnn, 64, 8, 3)) });
}
if (!isChild) print('small CNN, 64×64, batch 8 (median of 3; ratio to the cpu backend in this run)', 8, small, small.find((r) => r.backend === 'cpu'));

/**
 * MobileNetV2 at 224×224 in a child process per backend: wasm's heap is
 * capped at 4 GiB and an out-of-memory abort kills its module, so a batch
 * that does not fit is retried smaller in a fresh process.
 */
async function measureInChild(backend: string, batch: number): Promise<Row | undefined> {
  const { spawnSync } = await import('node:child_process');
  const child = spawnSync(process.execPath, [...process.execArgv, process.argv[1], '--child', backend, String(batch), ...(allowSoftwareAdapter ? ['--allow-software'] : [])], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const line = child.stdout.split('\n').find((l) => l.startsWith('ROW '));
  return line ? (JSON.parse(line.slice(4)) as Row) : undefined;
}

const childAt = process.argv.indexOf('--child');
if (childAt > 0) {
  const [backend, batch] = [process.argv[childAt + 1] as BackendName, Number(process.argv[childAt + 2])];
  const info = await initBackend(backend, { allowSoftwareAdapter });
  const row: Row = { backend, device: info.device, ...(await measure(`mnv2_${backend}`, mobileNetV2(MOBILENET_V2_BLOCKS, 1280, 4), 224, batch, 2)) };
  console.log(`ROW ${JSON.stringify({ ...row, batch })}`);
  process.exit(0);
}

if (!skipMobilenet && !isChild) {
  const large: (Row & { batch: number })[] = [];
  for (const backend of present.filter((b) => b.name !== 'cpu')) {
    for (const batch of [8, 4, 2, 1]) {
      const row = await measureInChild(backend.name, batch);
      if (row) {
        large.push({ ...row, batch });
        break;
      }
      console.log(`${backend.name}: MobileNetV2 at batch ${batch} did not fit (wasm's heap is 4 GiB); trying ${batch / 2}`);
    }
  }
  for (const row of large) print(`MobileNetV2, 224×224, batch ${row.batch}, ${row.backend} (median of 2; cpu left out: one input gradient takes minutes)`, row.batch, [row]);
}
