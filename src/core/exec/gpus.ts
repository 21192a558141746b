import { spawnSync } from 'node:child_process';

/** GPUs to pin tensor workers to: the number given, or (auto) those `nvidia-smi -L` lists. */
export function detectGpus(setting: 'auto' | number): number {
  if (typeof setting === 'number') return setting;
  if (process.env.CUDA_VISIBLE_DEVICES !== undefined) {
    return process.env.CUDA_VISIBLE_DEVICES.split(',').filter((id) => id.trim() !== '' && id.trim() !== '-1').length;
  }
  const result = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  if (result.status !== 0 || !result.stdout) return 0;
  return result.stdout.split('\n').filter((line) => line.startsWith('GPU ')).length;
}
