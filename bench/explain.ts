/**
 * Milliseconds per image of every registered explainer on MobileNetV2
 * (full width, 1,280-channel last layer, 4 classes, 224×224, seeded random
 * weights, loaded through the mobilenet-v2 plugin so CAMs use its default
 * layer features.18), on every backend present except cpu (there one input
 * gradient takes about 80 s), with the reference libraries' figures (PyTorch
 * 1.13 on 2 CPU cores, one image) and the ratio reference / salgrid where one
 * exists. Batches of 2 images; ScoreCAM, AblationCAM and occlusion run one.
 * Occlusion uses the reference's 15×15 window, stride 9; integrated
 * gradients 50 steps; everything else its defaults.
 *
 * Every (backend, explainer) runs in its own process, so one that runs out of
 * memory costs only its own row. A method whose first call takes under 20 s
 * is timed over 3 more calls (median); slower ones report that first call.
 *
 * Run: node --import tsx bench/explain.ts [--quick] [--backend wasm|webgpu|tensorflow] [--only id,id…]
 *   --quick   Grad-CAM, Grad-CAM++, saliency and input × gradient only
 *   --only    these explainers only
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { LoadedModel, Params } from '../src/core/plugins/types.ts';
import type { TensorExplainer } from '../src/core/tensor/tensor-explainer.ts';

const SELF = fileURLToPath(import.meta.url);
const BACKENDS = ['tensorflow', 'webgpu', 'wasm'] as const;
const QUICK = ['gradcam', 'gradcam++', 'saliency', 'input-x-gradient'];
const SIZE = 224;
const BATCH = 2;
const CLASSES = 4;
/** A first call under this is followed by 3 timed calls; a slower method reports its first call. */
const REPEAT_BELOW_MS = 20_000;
const CHILD_TIMEOUT_MS = 30 * 60_000;

/** The reference figures (PyTorch 1.13, pytorch-grad-cam / Captum, MobileNetV2, one image, 2 CPU cores), ms per image. */
const REFERENCE: Record<string, { ms: number; note: string }> = {
  gradcam: { ms: 178, note: '' },
  'gradcam++': { ms: 354, note: '' },
  saliency: { ms: 71, note: '' },
  'integrated-gradients': { ms: 2_600, note: '50 steps' },
  scorecam: { ms: 49_000, note: '1,280 channels' },
  occlusion: { ms: 56_000, note: '15×15 window, stride 9' },
};

/** Per-method settings: the reference's where it has a figure; the slow perturbation methods on one image. */
const SETTINGS: Record<string, { params?: Params; images?: number }> = {
  occlusion: { params: { window: 15, stride: 9 }, images: 1 },
  // internalBatchSize 8, not the default 32: 32 interpolated 224×224 inputs through MobileNetV2's backward pass exhaust wasm's 4 GiB heap (Aborted()); it bounds memory only, the maps are the same.
  'integrated-gradients': { params: { steps: 50, internalBatchSize: 8 } },
  scorecam: { images: 1 },
  ablationcam: { images: 1 },
};

interface Result {
  method: string;
  backend: string;
  device?: string;
  images: number;
  params?: string;
  msPerImage?: number;
  calls?: number;
  error?: string;
}

function argValue(flag: string): string | undefined {
  const at = process.argv.indexOf(flag);
  return at >= 0 ? process.argv[at + 1] : undefined;
}

/** The registered explainers that run outside a sweep, in registration order. */
async function explainers(): Promise<TensorExplainer[]> {
  const builtins = (await import('../src/plugins/index.ts')).default;
  return builtins.filter((p): p is TensorExplainer => p.kind === 'explainer' && typeof (p as Partial<TensorExplainer>).explainInput === 'function');
}

// ---------------------------------------------------------------- child: one method on one backend

async function runChild(method: string, backendName: string): Promise<void> {
  const report = (result: Partial<Result>): void => {
    process.stdout.write(`RESULT ${JSON.stringify({ method, backend: backendName, images: 0, ...result })}\n`);
  };
  const { initBackend } = await import('../src/core/tensor/backend.ts');
  let device: string;
  try {
    device = (await initBackend(backendName as (typeof BACKENDS)[number])).device;
  } catch (error) {
    return report({ error: `backend unavailable: ${(error as Error).message}` });
  }
  if (method === '--probe') return report({ device });
  const tf = await import('@tensorflow/tfjs');
  const { withSeededMathRandom } = await import('../src/core/random.ts');
  const { buildMobileNetV2, MOBILENET_V2_TARGET_LAYER } = await import('../src/plugins/architectures/mobilenet-v2-model.ts');
  const { mobileNetV2 } = await import('../src/plugins/architectures/mobilenet-v2.ts');
  const { IMAGENET_NORMALISATION } = await import('../src/core/tensor/preprocess.ts');
  const { checkParams } = await import('../src/cli/arch-params.ts');

  const explainer = (await explainers()).find((e) => e.id === method);
  if (!explainer) return report({ device, error: `no registered explainer ${method}` });
  const settings = SETTINGS[method] ?? {};
  const images = settings.images ?? BATCH;
  const params = checkParams(explainer, structuredClone(settings.params ?? {}), () => 'params');

  const model = withSeededMathRandom(2026, () => buildMobileNetV2({ widthMult: 1, numClasses: CLASSES, inputSize: SIZE }));
  const loaded: LoadedModel = mobileNetV2.loaded(model, {
    format: 1,
    architecture: { id: mobileNetV2.id, version: mobileNetV2.version, params: { widthMult: 1 } },
    classes: Array.from({ length: CLASSES }, (_, i) => `class${i}`),
    preprocessing: { size: [SIZE, SIZE], normalisation: IMAGENET_NORMALISATION },
    target: MOBILENET_V2_TARGET_LAYER,
    origin: { bench: 'random weights' },
  });
  const input = tf.randomNormal([images, SIZE, SIZE, 3], 0, 1, 'float32', 7) as import('@tensorflow/tfjs').Tensor4D;
  const call = async () => {
    const started = performance.now();
    const result = await explainer.explainInput(loaded, input, params, { warn: () => {} });
    if (result.maps.length !== images) throw new Error(`${result.maps.length} maps for ${images} images`);
    return performance.now() - started;
  };
  const shownParams = Object.entries(settings.params ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
  try {
    const first = await call();
    const times = [first];
    if (first < REPEAT_BELOW_MS) {
      times.length = 0;
      for (let i = 0; i < 3; i++) times.push(await call());
    }
    const median = [...times].sort((a, b) => a - b)[Math.floor(times.length / 2)];
    report({ device, images, params: shownParams, msPerImage: median / images, calls: times.length });
  } catch (error) {
    report({ device, images, params: shownParams, error: (error as Error).message.split('\n')[0] });
  } finally {
    input.dispose();
    loaded.engine.dispose();
    model.dispose();
  }
}

// ---------------------------------------------------------------- parent: every method on every backend

function child(method: string, backend: string): Promise<Result> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', SELF, '--child', method, '--backend', backend], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    proc.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => proc.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      if (line) return resolve(JSON.parse(line.slice('RESULT '.length)) as Result);
      const last = stderr.trim().split('\n').filter((l) => !/^\s+at /.test(l)).slice(-1)[0] ?? '';
      resolve({ method, backend, images: 0, error: `process ended (${signal ?? `exit ${code}`})${last ? `: ${last.slice(0, 200)}` : ''}` });
    });
  });
}

const format = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);

async function main(): Promise<void> {
  const backendArg = argValue('--backend');
  if (backendArg !== undefined && !(BACKENDS as readonly string[]).includes(backendArg)) {
    throw new Error(`--backend takes ${BACKENDS.join(', ')} (cpu is left out: one input gradient there takes about 80 s); got ${backendArg}`);
  }
  const all = (await explainers()).map((e) => e.id);
  const only = argValue('--only')?.split(',').map((id) => id.trim());
  const unknown = only?.filter((id) => !all.includes(id)) ?? [];
  if (unknown.length > 0) throw new Error(`--only names unregistered explainers ${unknown.join(', ')}; registered: ${all.join(', ')}`);
  const methods = only ?? (process.argv.includes('--quick') ? QUICK.filter((id) => all.includes(id)) : all);
  const backends = backendArg ? [backendArg] : [...BACKENDS];
  const cpus = os.cpus();
  const load = () => os.loadavg().map((l) => l.toFixed(1)).join(' ');
  console.log(`${cpus.length} CPUs (${cpus[0]?.model ?? 'unknown'}), Node ${process.version}; load average at start: ${load()}`);
  console.log(`MobileNetV2 (1,280-channel features.18), ${CLASSES} classes, ${SIZE}×${SIZE}, batch ${BATCH} (ScoreCAM, AblationCAM, occlusion: 1); explainers: ${methods.join(', ')}`);
  const rows: Result[] = [];
  for (const backend of backends) {
    const probe = await child('--probe', backend);
    if (probe.error) {
      console.log(`\n${backend}: skipped (${probe.error})`);
      continue;
    }
    console.log(`\n${backend} on ${probe.device}`);
    for (const method of methods) {
      const result = await child(method, backend);
      rows.push(result);
      const ref = REFERENCE[method];
      console.log(
        `  ${method.padEnd(22)} ${result.error ? `failed: ${result.error}` : `${format(result.msPerImage!).padStart(9)} / image (${result.images} image${result.images > 1 ? 's' : ''}, ${result.calls === 1 ? 'first call' : `median of ${result.calls}`})${ref ? `   reference ${format(ref.ms)}, ratio ${(ref.ms / result.msPerImage!).toFixed(2)}×` : ''}`}`,
      );
    }
  }
  console.log(`\nload average at the end: ${load()}`);
  if (rows.length === 0) return;
  console.log('\n| backend | explainer | settings | images | salgrid / image | reference / image | reference ÷ salgrid |');
  console.log('|---|---|---|---:|---:|---:|---:|');
  for (const r of rows) {
    const ref = REFERENCE[r.method];
    const settings = r.params || ref?.note || 'defaults';
    const salgrid = r.error ? `failed (${r.error})` : `${format(r.msPerImage!)}${r.calls === 1 ? ' †' : ''}`;
    console.log(`| ${r.backend} | ${r.method} | ${settings} | ${r.images || '—'} | ${salgrid} | ${ref ? format(ref.ms) : '—'} | ${ref && !r.error ? `${(ref.ms / r.msPerImage!).toFixed(2)}×` : '—'} |`);
  }
  console.log('\n† one call (over 20 s), first call included; others: median of 3 calls after a warm-up call.');
}

const childMethod = argValue('--child');
if (childMethod !== undefined) await runChild(childMethod, argValue('--backend') ?? 'wasm');
else await main();
