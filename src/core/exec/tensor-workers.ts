/**
 * How many tensor worker processes a sweep runs, and how many intra-op
 * threads the onnx engine gives each: together never more than the cores
 * (a thread per core is what ONNX Runtime's kernels are tuned for; more
 * only makes them wait for each other).
 */
import { UserError } from '../errors.ts';

/**
 * Intra-op threads per tensor worker when neither the workers nor the threads
 * are given, on a backend that runs on the CPU: one, so every core runs its
 * own task (a sweep has many independent ones). bench/engines.ts measures
 * the split; change it here.
 */
export const AUTO_THREADS_PER_CPU_WORKER = 1;

export interface TensorWorkerRequest {
  /** Cores this process may use (os.availableParallelism()). */
  cores: number;
  /** GPUs tensor workers are pinned to (0: none). */
  gpus: number;
  /** Whether the chosen backend computes on the CPU (runsOnCpu in backend.ts). */
  cpuBound: boolean;
  /** execution.workers.gpu or --workers gpu=N. */
  workers: number | 'auto';
  /** execution.threads or --threads. */
  threads: number | 'auto';
  /** Where the threads setting came from, for the message when it cannot be met. */
  threadsFrom?: string;
}

export interface TensorWorkers {
  workers: number;
  /** Intra-op threads of each worker's onnx engine. */
  threads: number;
}

export function sizeTensorWorkers(request: TensorWorkerRequest): TensorWorkers {
  const cores = Math.max(1, request.cores);
  const given = request.threadsFrom ?? 'threads';
  if (request.threads !== 'auto' && request.threads > cores) throw new UserError(`${given} ${request.threads} is more than the ${cores} cores here; give at most ${cores}.`);
  const workers =
    request.workers !== 'auto'
      ? request.workers
      : !request.cpuBound
        ? Math.max(1, request.gpus) // one per GPU; the threads only serve operators a GPU provider leaves to the CPU
        : Math.max(1, Math.floor(cores / (request.threads === 'auto' ? Math.min(AUTO_THREADS_PER_CPU_WORKER, cores) : request.threads)));
  if (request.threads === 'auto') return { workers, threads: Math.max(1, Math.floor(cores / workers)) };
  if (workers * request.threads > cores) {
    throw new UserError(
      `${given} ${request.threads} × ${workers} tensor workers would run ${workers * request.threads} threads on ${cores} cores; make workers × threads at most ${cores} (e.g. ${given} ${Math.max(1, Math.floor(cores / workers))}).`,
    );
  }
  return { workers, threads: request.threads };
}
