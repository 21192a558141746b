/** Backend names, apart from backend.ts so that naming one does not load TensorFlow.js. */
export const BACKEND_NAMES = ['tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
export type BackendRequest = 'auto' | BackendName;
