/**
 * Choosing and starting the backend. `auto` takes the first that works of
 * onnx:cuda → onnx:webgpu → onnx:cpu (ONNX Runtime, onnx-devices.ts), then
 * the TensorFlow.js backends tensorflow (libtensorflow through
 * @tensorflow/tfjs-node-gpu or -node) → webgpu (Dawn, npm `webgpu`) → wasm →
 * cpu, and remembers why the others were passed over, so a run can say what
 * it uses and why. With onnx, ONNX Runtime runs the networks and a tfjs
 * backend (wasm, else cpu) the small per-image math around them; training
 * runs on ONNX Runtime too (onnx-trainer.ts).
 */
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { UserError, errorMessage } from '../errors.ts';
import { detectGpus } from '../exec/gpus.ts';
import { setEngineChoice } from './engine-choice.ts';
import { tryOnnxDevice } from './onnx-devices.ts';
import { vulkanMissing } from './vulkan.ts';
import { probeDawnAdapter } from './webgpu-adapter.ts';
import { initWasmBackend } from './wasm-setup.ts';

import {
  BACKEND_NAMES,
  backendRecord,
  candidates,
  isOnnxBackend,
  onnxDevice,
  satisfies,
  type BackendName,
  type BackendRecord,
  type OnnxBackendName,
  type BackendRequest,
} from './backend-names.ts';

export { BACKEND_NAMES, backendRecord, type BackendName, type BackendRecord, type BackendRequest };

export interface BackendOptions {
  /** Accept a software WebGPU adapter (lavapipe, SwiftShader): for tests, far too slow for work. */
  allowSoftwareAdapter?: boolean;
  /** Intra-op threads of the onnx engine (default: every core this process may use). */
  threads?: number;
}

export interface BackendInfo {
  name: BackendName;
  /** Which engine runs the networks. */
  engine: 'onnx' | 'tfjs';
  /** What runs the kernels, e.g. the GPU's name. */
  device: string;
  /** The onnx engine's intra-op threads; absent for tfjs backends (salgrid does not set theirs). */
  threads?: number;
  /** Beside the onnx engine: the TensorFlow.js backend for per-image math. */
  tfjs?: string;
  /** Backends tried first that did not work, each with the reason. */
  passedOver: { name: BackendName; reason: string }[];
}

type Attempt = { ok: true; device: string } | { ok: false; reason: string };

const HOW_TO_GET: Record<BackendName, string> = {
  'onnx:cuda': 'onnx:cuda needs an NVIDIA GPU, CUDA 12 and cuDNN 9, and onnxruntime-node’s CUDA provider (see the README, “ONNX Runtime on CUDA”)',
  'onnx:webgpu': 'onnx:webgpu needs a GPU with a Vulkan (Linux), Metal (macOS) or Direct3D 12 (Windows) driver',
  'onnx:cpu': 'onnxruntime-node has builds for Linux, macOS and Windows on x64 and arm64; reinstall salgrid’s dependencies (`npm ci`)',
  tensorflow:
    'install @tensorflow/tfjs-node-gpu (NVIDIA GPU with CUDA 11.2 and cuDNN 8.1) or @tensorflow/tfjs-node (CPU) with `npm install`, on a machine that can download libtensorflow',
  webgpu: 'webgpu needs a GPU with a Vulkan driver and the optional package `webgpu` (`npm install webgpu`)',
  wasm: 'reinstall salgrid’s dependencies (`npm ci`): @tensorflow/tfjs-backend-wasm ships with it',
  cpu: 'reinstall salgrid’s dependencies (`npm ci`)',
};

function firstLine(error: unknown): string {
  return errorMessage(error).split('\n')[0].slice(0, 200);
}

async function loadable(name: string): Promise<unknown> {
  try {
    return await import(name);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') throw new Error(`${name} is not installed`);
    throw error;
  }
}

function nvidiaGpuName(): string | undefined {
  const result = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 5000 });
  return result.status === 0 ? result.stdout.split('\n')[0]?.trim() || undefined : undefined;
}

async function tryTensorflow(): Promise<Attempt> {
  const reasons: string[] = [];
  // tfjs-node-gpu falls back to the CPU silently without a GPU: only try it where one is visible.
  const packages = detectGpus('auto') > 0 ? ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] : ['@tensorflow/tfjs-node'];
  for (const name of packages) {
    try {
      await loadable(name);
      if (!(await tf.setBackend('tensorflow'))) throw new Error('its backend did not start');
      return { ok: true, device: name.endsWith('-gpu') ? `${nvidiaGpuName() ?? 'NVIDIA GPU'} (CUDA, ${name})` : `CPU (libtensorflow, ${name})` };
    } catch (error) {
      const reason = firstLine(error);
      reasons.push(reason.startsWith(name) ? reason : `${name}: ${reason}`);
    }
  }
  if (packages.length === 1) reasons.push('no NVIDIA GPU visible, so @tensorflow/tfjs-node-gpu was not tried');
  return { ok: false, reason: reasons.join('; ') };
}

interface AdapterInfo {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
  isFallbackAdapter?: boolean;
}

async function tryWebgpu(options: BackendOptions, explicit: boolean): Promise<Attempt> {
  // Dawn prints C++ warnings to stderr when it finds no driver: asked in passing (auto), look for Vulkan first; either way ask Dawn
  // in a child process first, so that a machine without a GPU hears none of it (what Dawn said goes into the message instead).
  const allowSoftwareAdapter = Boolean(options.allowSoftwareAdapter);
  const missing = explicit ? undefined : vulkanMissing({ allowSoftwareAdapter });
  if (missing) return { ok: false, reason: missing };
  const probe = await probeDawnAdapter();
  if (!probe.ok) return { ok: false, reason: probe.reason };
  if (probe.software && !allowSoftwareAdapter) {
    return { ok: false, reason: `only a software adapter (${probe.name}); set execution.allowSoftwareAdapter: true to use it anyway (for tests: it is slow)` };
  }
  try {
    const dawn = (await loadable('webgpu')) as { create(flags: string[]): { requestAdapter(o?: object): Promise<{ info?: AdapterInfo } | null> }; globals: object };
    // tfjs-backend-webgpu registers itself only if navigator.gpu and the GPU* globals exist when it loads.
    Object.assign(globalThis, dawn.globals);
    const flags = (process.env.WEBGPU_FLAGS ?? '').split(',').filter(Boolean);
    const gpu = dawn.create(flags);
    const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return { ok: false, reason: 'no WebGPU adapter (no Vulkan-capable driver found)' };
    const info = adapter.info ?? {};
    const device = info.description || [info.vendor, info.device].filter(Boolean).join(' ') || 'unknown adapter';
    const software = info.isFallbackAdapter || info.architecture === 'software' || /llvmpipe|lavapipe|swiftshader/i.test(device);
    if (software && !options.allowSoftwareAdapter) {
      return { ok: false, reason: `only a software adapter (${device}); set execution.allowSoftwareAdapter: true to use it anyway (for tests: it is slow)` };
    }
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, writable: true, configurable: true });
    await loadable('@tensorflow/tfjs-backend-webgpu');
    if (!(await tf.setBackend('webgpu'))) return { ok: false, reason: 'the webgpu backend did not start' };
    return { ok: true, device: `${device}${software ? ' (software)' : ''}` };
  } catch (error) {
    return { ok: false, reason: firstLine(error) };
  }
}

async function tryWasm(): Promise<Attempt> {
  try {
    // The faster input-gradient kernel (tested against cpu) speeds up every explainer's backward pass 3–10×.
    await initWasmBackend({ fastConv2DBackpropInput: true });
    return { ok: true, device: 'CPU (WebAssembly, single-threaded)' };
  } catch (error) {
    return { ok: false, reason: firstLine(error) };
  }
}

async function tryCpu(): Promise<Attempt> {
  if (!(await tf.setBackend('cpu'))) return { ok: false, reason: 'the cpu backend did not start' };
  // tfjs-backend-cpu greets its first tensor in Node with a banner recommending tfjs-node; salgrid's own backend line already says what runs and why.
  const cpu = tf.backend() as { firstUse?: boolean };
  if (cpu.firstUse === true) cpu.firstUse = false;
  return { ok: true, device: 'CPU (JavaScript)' };
}

/**
 * ONNX Runtime on `name`'s device, with a tfjs backend beside it for what
 * stays on TensorFlow.js: the per-image math around the engine (CAM weights,
 * upsampling, augmentation and normalisation of training batches). wasm
 * where it starts, else cpu, whose kernels are plain JavaScript loops.
 */
async function tryOnnx(name: OnnxBackendName, options: BackendOptions, explicit: boolean): Promise<Attempt> {
  const result = await tryOnnxDevice(onnxDevice(name), { allowSoftwareAdapter: Boolean(options.allowSoftwareAdapter), explicit });
  if (!result.ok) return result;
  if ((await tryWasm()).ok) return result;
  const cpu = await tryCpu();
  return cpu.ok ? result : { ok: false, reason: `no TensorFlow.js backend started beside it for the per-image math (${cpu.reason})` };
}

function attempt(name: BackendName, options: BackendOptions, explicit: boolean): Promise<Attempt> {
  if (isOnnxBackend(name)) return tryOnnx(name, options, explicit);
  switch (name) {
    case 'tensorflow':
      return tryTensorflow();
    case 'webgpu':
      return tryWebgpu(options, explicit);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
  }
}

let active: BackendInfo | undefined;

/** Makes the engine choice match the started backend (engine-choice.ts), with the onnx engine's threads. */
function chooseEngine(info: BackendInfo): void {
  if (info.engine === 'onnx' && isOnnxBackend(info.name)) setEngineChoice({ engine: 'onnx', device: onnxDevice(info.name), threads: info.threads! });
  else setEngineChoice({ engine: 'tfjs' });
}

/**
 * Starts the requested backend in this process (once; later calls return
 * the same choice, with the onnx engine's threads updated if given). A named
 * backend that cannot start is a `UserError` saying how to get it.
 */
export async function initBackend(request: BackendRequest, options: BackendOptions = {}): Promise<BackendInfo> {
  const threads = options.threads ?? os.availableParallelism();
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`onnx threads must be a whole number ≥ 1, got ${threads}`);
  if (active && satisfies(active.name, request)) {
    if (active.engine === 'onnx' && active.threads !== threads) {
      active = { ...active, threads };
      chooseEngine(active);
    }
    return active;
  }
  const passedOver: BackendInfo['passedOver'] = [];
  for (const name of candidates(request)) {
    const result = await attempt(name, options, request === name);
    if (result.ok) {
      await tf.ready();
      active = isOnnxBackend(name) ? { name, engine: 'onnx', device: result.device, threads, tfjs: tf.getBackend(), passedOver } : { name, engine: 'tfjs', device: result.device, passedOver };
      chooseEngine(active);
      return active;
    }
    if (request === name) throw new UserError(`the ${name} backend is not available here (${result.reason}); ${HOW_TO_GET[name]}, or use --backend auto.`);
    passedOver.push({ name, reason: result.reason });
  }
  const reasons = passedOver.map((p) => `${p.name}: ${p.reason}`).join('; ');
  if (request === 'onnx') throw new UserError(`ONNX Runtime runs on none of its devices here (${reasons}); ${HOW_TO_GET['onnx:cpu']}, or use --backend auto.`);
  throw new UserError(`no backend could start (${reasons}); ${HOW_TO_GET.cpu}.`);
}

/** One line for the start of a run: what is used (engine, device, threads), and why the others were not. */
export function describeBackend(info: BackendInfo): string {
  const skipped = info.passedOver.map((p) => `${p.name}: ${p.reason}`).join('; ');
  const threads = info.threads === undefined ? '' : `, ${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  return `backend: ${info.name} on ${info.device}${threads}${skipped ? ` (passed over — ${skipped})` : ''}`;
}

/** Backends whose work runs on the CPU (given the GPUs the run found): parallelism comes from worker processes (and onnx threads). */
export function runsOnCpu(name: BackendName, gpus: number): boolean {
  return name === 'onnx:cpu' || name === 'wasm' || name === 'cpu' || (name === 'tensorflow' && gpus === 0);
}
