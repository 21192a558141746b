/**
 * Kernels salgrid adds to tfjs-backend-wasm so that training runs on it.
 * Training a CNN on wasm 4.22.0 stops at the kernels it lacks (found by
 * running training steps of small CNNs and MobileNetV2-shaped nets with SGD,
 * momentum, Adam, RMSprop, Adagrad, and an embedding model, and reading the
 * "not registered for backend wasm" errors): the two conv filter gradients,
 * the depthwise input gradient, and UnsortedSegmentSum (gather's gradient).
 * Its MaxPoolGrad exists but is wrong (see max-pool-grad.ts), so it is
 * replaced. Its Conv2DBackpropInput is right but slow; a faster one is
 * registered on request.
 */
import * as tf from '@tensorflow/tfjs';
import { conv2dBackpropFilter } from './conv2d-backprop-filter.ts';
import { conv2dBackpropInput } from './conv2d-backprop-input.ts';
import { depthwiseConv2dBackpropFilter } from './depthwise-backprop-filter.ts';
import { depthwiseConv2dBackpropInput } from './depthwise-backprop-input.ts';
import { maxPoolGrad } from './max-pool-grad.ts';
import { unsortedSegmentSum } from './unsorted-segment-sum.ts';

const BACKEND = 'wasm';

/** Kernels wasm does not have: registered only while it still lacks them. */
const MISSING: Record<string, tf.KernelFunc> = {
  Conv2DBackpropFilter: conv2dBackpropFilter as tf.KernelFunc,
  DepthwiseConv2dNativeBackpropFilter: depthwiseConv2dBackpropFilter as tf.KernelFunc,
  DepthwiseConv2dNativeBackpropInput: depthwiseConv2dBackpropInput as tf.KernelFunc,
  UnsortedSegmentSum: unsortedSegmentSum as tf.KernelFunc,
};

/** Kernels wasm has but computes wrongly: replaced. */
const REPLACED: Record<string, tf.KernelFunc> = {
  MaxPoolGrad: maxPoolGrad as tf.KernelFunc,
};

/** Kernels wasm computes rightly but slowly: replaced only when asked. */
const FASTER: Record<string, tf.KernelFunc> = {
  Conv2DBackpropInput: conv2dBackpropInput as tf.KernelFunc,
};

/** Names of the kernels salgrid always provides for wasm, for logs and tests. */
export const WASM_TRAINING_KERNELS = [...Object.keys(MISSING), ...Object.keys(REPLACED)];

export interface WasmKernelOptions {
  /**
   * Also replace wasm's Conv2DBackpropInput (correct, but 3–10× slower than
   * salgrid's XNNPACK-based one; it is most of a wasm training step and all of
   * an input gradient's convolution cost). Once replaced it stays replaced in
   * this process.
   */
  fastConv2DBackpropInput?: boolean;
}

function replace(kernelName: string, kernelFunc: tf.KernelFunc): boolean {
  const current = tf.getKernel(kernelName, BACKEND);
  if (current?.kernelFunc === kernelFunc) return false;
  // Unregistering first keeps tfjs from warning about a second registration.
  if (current) tf.unregisterKernel(kernelName, BACKEND);
  tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
  return true;
}

/**
 * Registers salgrid's training kernels for the wasm backend. Idempotent; may
 * run before or after the backend is initialised (the kernel registry is
 * global). Returns the names registered by this call.
 */
export function registerWasmTrainingKernels(options: WasmKernelOptions = {}): string[] {
  const registered: string[] = [];
  for (const [kernelName, kernelFunc] of Object.entries(MISSING)) {
    if (tf.getKernel(kernelName, BACKEND)) continue;
    tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
    registered.push(kernelName);
  }
  const replacements = { ...REPLACED, ...(options.fastConv2DBackpropInput ? FASTER : {}) };
  for (const [kernelName, kernelFunc] of Object.entries(replacements)) {
    if (replace(kernelName, kernelFunc)) registered.push(kernelName);
  }
  return registered;
}
