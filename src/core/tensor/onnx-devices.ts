/**
 * Which ONNX Runtime execution providers work here, found by building a
 * one-node session (Relu) on each and running it: a provider that loads but
 * cannot run is passed over as surely as one that is missing. The CPU
 * provider is asked in this process (it prints nothing); CUDA and WebGPU in
 * a child process (quiet-probe.ts), because their loaders print C++ warnings
 * to stderr when a library or a driver is missing. Cheap checks run first
 * so that a machine without a GPU pays nothing for asking.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as Ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { errorMessage } from '../errors.ts';
import { detectGpus } from '../exec/gpus.ts';
import type { OnnxDeviceName } from './backend-names.ts';
import { firstStderrLine, runQuietProbe } from './quiet-probe.ts';
import { hasHardwareDriver, vulkanDrivers, vulkanMissing } from './vulkan.ts';
import { adapterName, isSoftwareAdapter } from './webgpu-adapter.ts';

export type DeviceAttempt = { ok: true; device: string } | { ok: false; reason: string };

export interface OnnxProbeOptions {
  allowSoftwareAdapter: boolean;
  /** The user named this device: skip the cheap guesses and ask the provider itself, quoting what it said. */
  explicit: boolean;
}

const require = createRequire(import.meta.url);

function firstLine(error: unknown): string {
  return errorMessage(error).split('\n')[0].slice(0, 300);
}

/** onnxruntime-node's folder of native libraries for this platform (where an installed CUDA provider lies). */
export function onnxRuntimeBinDir(): string | undefined {
  try {
    return path.join(path.dirname(require.resolve('onnxruntime-node')), '..', 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    return undefined;
  }
}

let loaded: Promise<typeof Ort> | undefined;

async function onnxRuntime(): Promise<typeof Ort> {
  return (loaded ??= import('onnxruntime-node'));
}

/** "ONNX Runtime 1.23.2", or the reason it does not load here. */
export async function onnxRuntimeVersion(): Promise<{ ok: true; version: string } | { ok: false; reason: string }> {
  try {
    const ort = await onnxRuntime();
    return { ok: true, version: ort.env.versions.common ?? 'unknown version' };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') return { ok: false, reason: 'onnxruntime-node is not installed' };
    return { ok: false, reason: `onnxruntime-node does not load here (${firstLine(error)})` };
  }
}

/** y = Relu(x), x of shape [2]: the smallest graph every provider runs. */
export function probeModel(): Uint8Array {
  const { onnx } = onnxProto;
  const value = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimValue: 2 }] } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'salgrid-probe',
    graph: { name: 'probe', node: [{ opType: 'Relu', input: ['x'], output: ['y'] }], input: [value('x')], output: [value('y')] },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** The check the probe makes of the session's answer: Relu(-1, 2) = (0, 2). */
function reluWorked(values: ArrayLike<number>): boolean {
  return values.length === 2 && values[0] === 0 && values[1] === 2;
}

async function tryCpuProvider(version: string): Promise<DeviceAttempt> {
  try {
    const ort = await onnxRuntime();
    const session = await ort.InferenceSession.create(probeModel(), { executionProviders: ['cpu'], intraOpNumThreads: 1, logSeverityLevel: 3 });
    try {
      const result = await session.run({ x: new ort.Tensor('float32', Float32Array.of(-1, 2), [2]) });
      if (!reluWorked(result.y.data as Float32Array)) return { ok: false, reason: 'its CPU provider computed a wrong result' };
    } finally {
      await session.release();
    }
    return { ok: true, device: `CPU (ONNX Runtime ${version})` };
  } catch (error) {
    return { ok: false, reason: `its CPU provider did not start (${firstLine(error)})` };
  }
}

interface ChildAnswer {
  ok?: boolean;
  error?: string;
  adapter?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
}

/**
 * The child: asks Dawn (npm `webgpu`, when given) for the adapter it would
 * pick, then builds and runs the probe session on the provider.
 */
const CHILD_SCRIPT = `
const [ortUrl, provider, modelBase64, webgpuUrl] = process.argv.slice(1);
const answer = {};
try {
  if (webgpuUrl) {
    try {
      const dawn = await import(webgpuUrl);
      const adapter = await dawn.create([]).requestAdapter({ powerPreference: 'high-performance' });
      if (adapter) {
        const i = adapter.info ?? {};
        answer.adapter = { vendor: i.vendor, architecture: i.architecture, device: i.device, description: i.description, isFallbackAdapter: i.isFallbackAdapter };
      }
    } catch {}
  }
  const ort = await import(ortUrl);
  const session = await ort.InferenceSession.create(Buffer.from(modelBase64, 'base64'), { executionProviders: [provider], logSeverityLevel: 3 });
  const result = await session.run({ x: new ort.Tensor('float32', Float32Array.of(-1, 2), [2]) });
  const y = Array.from(result.y.data);
  answer.ok = y.length === 2 && y[0] === 0 && y[1] === 2;
  if (!answer.ok) answer.error = 'the probe graph computed a wrong result';
} catch (error) {
  answer.ok = false;
  answer.error = String(error && error.message ? error.message : error).split('\\n')[0];
}
process.stdout.write('\\n' + JSON.stringify(answer) + '\\n');
process.exit(0);
`;

function packageUrl(name: string): string | undefined {
  try {
    return pathToFileURL(require.resolve(name)).href;
  } catch {
    return undefined;
  }
}

async function probeInChild(provider: 'cuda' | 'webgpu', withAdapter: boolean): Promise<ChildAnswer & { stderr: string; failure?: string }> {
  const ortUrl = packageUrl('onnxruntime-node');
  if (!ortUrl) return { ok: false, error: 'onnxruntime-node is not installed', stderr: '' };
  const args = [ortUrl, provider, Buffer.from(probeModel()).toString('base64')];
  const webgpuUrl = withAdapter ? packageUrl('webgpu') : undefined;
  if (webgpuUrl) args.push(webgpuUrl);
  const outcome = await runQuietProbe<ChildAnswer>(CHILD_SCRIPT, args);
  return { ...(outcome.answer ?? { ok: false, error: outcome.failure }), stderr: outcome.stderr, failure: outcome.failure };
}

/**
 * ONNX Runtime's message without the C++ source location and failed
 * assertion it starts with ("/onnxruntime_src/…/webgpu_context.cc:87 … was
 * false. Failed to get a WebGPU adapter: …").
 */
export function ortMessage(error: string | undefined): string {
  if (!error) return 'no reason given';
  const located = /^\S+\.(?:cc|cpp|h):\d+ /.test(error);
  if (!located) return error;
  const asserted = error.lastIndexOf(' was false. ');
  if (asserted >= 0) return error.slice(asserted + ' was false. '.length);
  return error.replace(/^\S+\.(?:cc|cpp|h):\d+ /, '');
}

/** Dawn's warning without its "Warning:" and source location, e.g. "Couldn't load Vulkan: libvulkan.so.1: …". */
export function dawnSaid(stderr: string): string | undefined {
  const line = firstStderrLine(stderr);
  return line && `Dawn: ${line.replace(/^Warning:\s*/, '')}`;
}

/** The loader's own words for why a provider failed, e.g. which CUDA or cuDNN library is missing. */
export function loaderDetail(stderr: string): string | undefined {
  const failLine = stderr.split('\n').find((line) => /FAIL : /.test(line));
  if (failLine) return failLine.slice(failLine.indexOf('FAIL : ') + 'FAIL : '.length).trim().slice(0, 300);
  return firstStderrLine(stderr);
}

function cudaProviderFile(): string | undefined {
  const dir = onnxRuntimeBinDir();
  if (!dir) return undefined;
  const name = process.platform === 'win32' ? 'onnxruntime_providers_cuda.dll' : 'libonnxruntime_providers_cuda.so';
  return path.join(dir, name);
}

function nvidiaGpuName(): string | undefined {
  const result = spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8', timeout: 5000 });
  return result.status === 0 ? result.stdout.split('\n')[0]?.trim() || undefined : undefined;
}

async function tryCudaProvider(version: string): Promise<DeviceAttempt> {
  if (process.platform === 'darwin') return { ok: false, reason: 'ONNX Runtime has no CUDA provider on macOS' };
  const file = cudaProviderFile();
  if (!file || !existsSync(file)) return { ok: false, reason: `its CUDA provider is not installed (no ${file ? path.basename(file) : 'provider library'} in onnxruntime-node’s bin folder)` };
  if (detectGpus('auto') === 0) return { ok: false, reason: 'no NVIDIA GPU visible (nvidia-smi lists none)' };
  const answer = await probeInChild('cuda', false);
  if (!answer.ok) {
    const detail = loaderDetail(answer.stderr);
    return { ok: false, reason: `its CUDA provider did not start (${ortMessage(answer.error)}${detail ? `: ${detail}` : ''})` };
  }
  return { ok: true, device: `${nvidiaGpuName() ?? 'NVIDIA GPU'} (CUDA, ONNX Runtime ${version})` };
}

async function tryWebgpuProvider(version: string, options: OnnxProbeOptions): Promise<DeviceAttempt> {
  const binDir = onnxRuntimeBinDir();
  if (!options.explicit) {
    const missing = vulkanMissing({ allowSoftwareAdapter: options.allowSoftwareAdapter, loaderDirs: binDir ? [binDir] : [] });
    if (missing) return { ok: false, reason: missing };
  }
  const answer = await probeInChild('webgpu', true);
  if (!answer.ok) {
    // Dawn's own warning (e.g. "Couldn't load Vulkan") says more than the provider's error: shown when the user asked for webgpu.
    const detail = options.explicit ? dawnSaid(answer.stderr) : undefined;
    return { ok: false, reason: `its WebGPU provider did not start (${ortMessage(answer.error)}${detail ? `; ${detail}` : ''})` };
  }
  // Dawn's adapter when the webgpu package is installed; otherwise the Vulkan drivers tell whether the GPU is real.
  const adapter = answer.adapter;
  const name = adapter ? adapterName(adapter) : '';
  const software = adapter ? isSoftwareAdapter(adapter, name) : process.platform === 'linux' && softwareDriversOnly();
  if (software && !options.allowSoftwareAdapter) {
    return { ok: false, reason: `only a software adapter (${name || 'a software Vulkan driver'}); set execution.allowSoftwareAdapter: true to use it anyway (for tests: it is slow)` };
  }
  return { ok: true, device: `${name || 'GPU'}${software ? ' (software)' : ''} (WebGPU, ONNX Runtime ${version})` };
}

function softwareDriversOnly(): boolean {
  return !hasHardwareDriver(vulkanDrivers());
}

/** Whether ONNX Runtime runs on `device` here, and on what. */
export async function tryOnnxDevice(device: OnnxDeviceName, options: OnnxProbeOptions): Promise<DeviceAttempt> {
  const runtime = await onnxRuntimeVersion();
  if (!runtime.ok) return { ok: false, reason: runtime.reason };
  switch (device) {
    case 'cpu':
      return tryCpuProvider(runtime.version);
    case 'cuda':
      return tryCudaProvider(runtime.version);
    case 'webgpu':
      return tryWebgpuProvider(runtime.version, options);
  }
}
