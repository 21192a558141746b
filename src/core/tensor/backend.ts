/**
 * Choosing and starting the TensorFlow.js backend. `auto` takes the first
 * that works of tensorflow (libtensorflow through @tensorflow/tfjs-node-gpu
 * or -node) → webgpu (Dawn, npm `webgpu`) → wasm → cpu, and remembers why the
 * others were passed over, so a run can say what it uses and why.
 */
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { UserError, errorMessage } from '../errors.ts';
import { detectGpus } from '../exec/gpus.ts';
import { initWasmBackend } from './wasm-setup.ts';

import { BACKEND_NAMES, type BackendName, type BackendRequest } from './backend-names.ts';

export { BACKEND_NAMES, type BackendName, type BackendRequest };

export interface BackendOptions {
  /** Accept a software WebGPU adapter (lavapipe, SwiftShader): for tests, far too slow for work. */
  allowSoftwareAdapter?: boolean;
}

export interface BackendInfo {
  name: BackendName;
  /** What runs the kernels, e.g. the GPU's name. */
  device: string;
  /** Backends tried first that did not work, each with the reason. */
  passedOver: { name: BackendName; reason: string }[];
}

type Attempt = { ok: true; device: string } | { ok: false; reason: string };

const HOW_TO_GET: Record<BackendName, string> = {
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

async function tryWebgpu(options: BackendOptions): Promise<Attempt> {
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

function attempt(name: BackendName, options: BackendOptions): Promise<Attempt> {
  switch (name) {
    case 'tensorflow':
      return tryTensorflow();
    case 'webgpu':
      return tryWebgpu(options);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
  }
}

let active: BackendInfo | undefined;

/**
 * Starts the requested backend in this process (once; later calls return
 * the same choice). A named backend that cannot start is a `UserError`
 * saying how to get it.
 */
export async function initBackend(request: BackendRequest, options: BackendOptions = {}): Promise<BackendInfo> {
  if (active && (request === 'auto' || request === active.name)) return active;
  const passedOver: BackendInfo['passedOver'] = [];
  for (const name of request === 'auto' ? BACKEND_NAMES : [request]) {
    const result = await attempt(name, options);
    if (result.ok) {
      await tf.ready();
      active = { name, device: result.device, passedOver };
      return active;
    }
    if (request !== 'auto') throw new UserError(`the ${name} backend is not available here (${result.reason}); ${HOW_TO_GET[name]}, or use --backend auto.`);
    passedOver.push({ name, reason: result.reason });
  }
  throw new UserError(`no TensorFlow.js backend could start (${passedOver.map((p) => `${p.name}: ${p.reason}`).join('; ')}); ${HOW_TO_GET.cpu}.`);
}

/** One line for the start of a run: what is used, and why the others were not. */
export function describeBackend(info: BackendInfo): string {
  const skipped = info.passedOver.map((p) => `${p.name}: ${p.reason}`).join('; ');
  return `backend: ${info.name} on ${info.device}${skipped ? ` (passed over — ${skipped})` : ''}`;
}

/** Backends whose work runs on the CPU (given the GPUs the run found): parallelism comes from worker processes. */
export function runsOnCpu(name: BackendName, gpus: number): boolean {
  return name === 'wasm' || name === 'cpu' || (name === 'tensorflow' && gpus === 0);
}
