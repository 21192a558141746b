/**
 * Where the benches' PyTorch anchors run: the first Python that imports
 * torch and torchvision of $SALGRID_TORCH_PYTHON, Debian's /usr/bin/python3
 * (python3-torch) and python3 on PATH. An anchor, never a test dependency.
 */
import { spawnSync } from 'node:child_process';

export function findTorch(): { python: string; version: string } | { reason: string } {
  const tried: string[] = [];
  for (const python of [process.env.SALGRID_TORCH_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => Boolean(p))) {
    const probe = spawnSync(python, ['-c', 'import torch, torchvision; print(torch.__version__, torchvision.__version__)'], { encoding: 'utf8', timeout: 60_000 });
    if (probe.status === 0) {
      const [torch, vision] = probe.stdout.trim().split(' ');
      return { python, version: `PyTorch ${torch}, torchvision ${vision} (${python})` };
    }
    tried.push(`${python}: ${probe.error ? probe.error.message : (probe.stderr.trim().split('\n').pop() ?? `exit ${probe.status}`)}`);
  }
  return { reason: `no Python with torch and torchvision (${tried.join('; ')}); on Debian: apt-get install python3-torch python3-torchvision` };
}
