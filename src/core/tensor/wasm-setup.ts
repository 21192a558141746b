/**
 * Starts the tfjs wasm backend in Node, ready to train.
 *
 * The .wasm binaries are pointed at explicitly (the folder of the package's
 * own Node bundle, found through module resolution) so that loading does not
 * depend on where a bundler or the current directory put things. In Node,
 * tfjs turns wasm threads off, so the backend is single-threaded: parallelism
 * comes from worker processes.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { type WasmKernelOptions, registerWasmTrainingKernels } from './wasm-kernels/index.ts';

export interface WasmBackendInfo {
  /** Whether the SIMD build of the binary was loaded. */
  simd: boolean;
  /** Threads XNNPACK uses (1 in Node). */
  threads: number;
  /** Folder the .wasm binaries were loaded from. */
  wasmDir: string;
}

/** Folder holding tfjs-backend-wasm's .wasm files (next to its Node bundle). */
export function wasmBinaryDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
}

let pathsSet = false;

/**
 * Points tfjs-backend-wasm at its binaries, registers salgrid's training
 * kernels and makes 'wasm' the active backend. Safe to call more than once.
 */
export async function initWasmBackend(options: WasmKernelOptions = {}): Promise<WasmBackendInfo> {
  const wasmDir = wasmBinaryDir();
  if (!pathsSet) {
    // setWasmPaths throws once the backend has been initialised; a second call
    // after that has nothing left to set.
    setWasmPaths(wasmDir + path.sep);
    pathsSet = true;
  }
  registerWasmTrainingKernels(options);
  if (!(await tf.setBackend('wasm'))) {
    throw new Error(`the TensorFlow.js wasm backend failed to start (binaries looked for in ${wasmDir})`);
  }
  await tf.ready();
  return { simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')), threads: getThreadsCount(), wasmDir };
}
