/**
 * Backend names, apart from backend.ts so that naming one does not load
 * TensorFlow.js or ONNX Runtime. `onnx:<device>` runs the networks on ONNX
 * Runtime; the others are TensorFlow.js backends. The order is the order
 * `auto` tries them in.
 */
export const ONNX_DEVICES = ['cuda', 'webgpu', 'cpu'] as const;
export type OnnxDeviceName = (typeof ONNX_DEVICES)[number];

export const ONNX_BACKEND_NAMES = ['onnx:cuda', 'onnx:webgpu', 'onnx:cpu'] as const;
export const TFJS_BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export const BACKEND_NAMES = [...ONNX_BACKEND_NAMES, ...TFJS_BACKEND_NAMES] as const;

export type OnnxBackendName = (typeof ONNX_BACKEND_NAMES)[number];
export type TfjsBackendName = (typeof TFJS_BACKEND_NAMES)[number];
export type BackendName = (typeof BACKEND_NAMES)[number];
/** What a user may ask for: a backend, `onnx` (its best device) or `auto` (the best of all). */
export type BackendRequest = 'auto' | 'onnx' | BackendName;

/** What a tensor artifact's meta.json records about the backend that made it. */
export interface BackendRecord {
  name: BackendName;
  engine: 'onnx' | 'tfjs';
  device: string;
  /** The onnx engine's intra-op threads. */
  threads?: number;
  /** Beside the onnx engine: the TensorFlow.js backend that trains (the train stage's loop is still TensorFlow.js). */
  tfjs?: string;
}

/** The record of a started backend (backend.ts's BackendInfo, without what was passed over). */
export function backendRecord(info: BackendRecord): BackendRecord {
  return { name: info.name, engine: info.engine, device: info.device, ...(info.threads !== undefined ? { threads: info.threads } : {}), ...(info.tfjs !== undefined ? { tfjs: info.tfjs } : {}) };
}

/** Every accepted request, in the order messages list them. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', 'onnx', ...BACKEND_NAMES];

export function isBackendRequest(text: string): text is BackendRequest {
  return (BACKEND_REQUESTS as readonly string[]).includes(text);
}

export function isOnnxBackend(name: BackendName): name is OnnxBackendName {
  return name.startsWith('onnx:');
}

export function onnxDevice(name: OnnxBackendName): OnnxDeviceName {
  return name.slice('onnx:'.length) as OnnxDeviceName;
}

/** The backends a request tries, in order. */
export function candidates(request: BackendRequest): readonly BackendName[] {
  if (request === 'auto') return BACKEND_NAMES;
  if (request === 'onnx') return ONNX_BACKEND_NAMES;
  return [request];
}

/** Whether an already started backend satisfies a request (a process starts one backend). */
export function satisfies(name: BackendName, request: BackendRequest): boolean {
  return request === 'auto' || request === name || (request === 'onnx' && isOnnxBackend(name));
}

/**
 * A near miss's correction for a message: `cuda` → `onnx:cuda`, `onnx-cpu` →
 * `onnx:cpu`; undefined when nothing is close.
 */
export function suggestBackend(text: string): BackendRequest | undefined {
  const lower = text.trim().toLowerCase();
  if (isBackendRequest(lower)) return lower;
  const device = lower.replace(/^onnx[-_/ .]?/, '');
  if ((ONNX_DEVICES as readonly string[]).includes(device) && device !== lower) return `onnx:${device}` as BackendRequest;
  if (device === 'cuda') return 'onnx:cuda';
  return undefined;
}
