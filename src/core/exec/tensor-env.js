// @ts-check
/**
 * The environment of a tensor worker process. glibc serves large buffers
 * with fresh mmaps that page-fault on first touch and are unmapped on free:
 * every MB ONNX Runtime hands back to JavaScript then costs ~2.6 ms
 * (measured, onnxruntime-node 1.23, 2 threads: a 38.5 MB output took 101 ms,
 * 5.6 ms with the thresholds raised). With both thresholds high, freed
 * memory stays in the heap for the next batch. glibc reads them only at
 * process start, so they are set for the workers salgrid spawns and for the
 * CLI's own tensor commands (src/cli/tensor-process.js); a value the user
 * set is kept.
 *
 * Plain JavaScript (type-checked through JSDoc): bin/salgrid.js reads it
 * before it loads the TypeScript loader.
 */

/** 256 MiB: outputs up to that size reuse the heap (measured: as fast as 1 GiB); at most that much freed memory stays held per worker. */
export const TENSOR_MALLOC_THRESHOLD = String(256 * 1024 * 1024);

export const MALLOC_VARIABLES = /** @type {const} */ (['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_']);

/** @param {string | undefined} value */
const unset = (value) => value === undefined || value === '';

/**
 * `env` with each allocator variable it leaves unset set to the threshold.
 * @param {NodeJS.ProcessEnv} env
 * @returns {NodeJS.ProcessEnv}
 */
export function tensorWorkerEnv(env) {
  const out = { ...env };
  for (const name of MALLOC_VARIABLES) if (unset(out[name])) out[name] = TENSOR_MALLOC_THRESHOLD;
  return out;
}

/**
 * Whether `env` already sets every allocator variable (salgrid or the user did).
 * @param {NodeJS.ProcessEnv} env
 */
export const hasTensorEnv = (env) => MALLOC_VARIABLES.every((name) => !unset(env[name]));
