/**
 * The CLI's tensor commands run in a child process started with the tensor
 * allocator settings (src/cli/tensor-process.js): which commands do, that
 * the child has the settings, that a signal sent to the waiting process
 * stops the child and ends the waiting one by the same signal, and that a
 * child whose waiting process is killed with SIGKILL stops too.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { runsTensorWork } from '../src/cli/tensor-process.js';
import { TENSOR_MALLOC_THRESHOLD } from '../src/core/exec/tensor-env.js';
import { writeNpy } from '../src/core/io/npy.ts';
import { BIN, ROOT, tempDir } from './helpers.ts';

const MOBILENET = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'mobilenet_v2');

/** The pids whose parent is `pid` (from /proc/*\/stat, whose fourth field is the parent's pid). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) children.push(Number(name));
    } catch {
      // Gone between the listing and the read.
    }
  }
  return children;
}

/** Whether `pid` still runs (a zombie left for a parent that never reaps it counts as ended). */
function running(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}

async function until<T>(what: string, probe: () => T | undefined, timeoutMs = 20_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Every process a test started, stopped at the end whatever the tests found. */
const started: number[] = [];
after(() => {
  for (const pid of started) if (running(pid)) process.kill(pid, 'SIGKILL');
});

/** `salgrid train` for longer than any test waits, with the settings left to salgrid. */
async function startLongTrain(): Promise<{ parent: ReturnType<typeof spawn>; child: number; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }> {
  const dir = tempDir('salgrid-tensor-process-');
  const labels = path.join(dir, 'labels.npy');
  await writeNpy(labels, { dtype: 'int32', shape: [2], data: Int32Array.of(0, 1) });
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '1', NO_COLOR: '1' };
  delete env.MALLOC_MMAP_THRESHOLD_;
  delete env.MALLOC_TRIM_THRESHOLD_;
  const args = ['train', '--model', path.join(MOBILENET, 'state_dict.pth'), '--arch', 'mobilenet-v2', '--arch-param', 'widthMult=0.5', '--input', path.join(MOBILENET, 'inputs.npy'), '--labels', labels, '--steps', '100000', '--backend', 'onnx:cpu', '--out', path.join(dir, 'out.pth')];
  const parent = spawn(process.execPath, [BIN, ...args], { cwd: dir, env, stdio: 'ignore' });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => parent.once('exit', (code, signal) => resolve({ code, signal })));
  const child = await until('the tensor child process', () => childrenOf(parent.pid!)[0]);
  started.push(parent.pid!, child);
  return { parent, child, exited };
}

describe('the CLI’s tensor process', () => {
  it('is used by train, explain, predict, score and task run, after any global option, and by nothing else', () => {
    for (const args of [['train', '--model', 'm'], ['explain'], ['predict', '--help'], ['score', 'x'], ['--runs', 'r', 'task', 'run', 'abc'], ['task', 'run']]) assert.equal(runsTensorWork(args), true, args.join(' '));
    for (const args of [[], ['run', 'sweep.yaml'], ['--runs', 'train', 'report'], ['weights', 'export', 'a', 'b'], ['task', 'list'], ['synth', 'train'], ['--version'], ['help', 'train']]) assert.equal(runsTensorWork(args), false, args.join(' '));
  });

  it('runs with the allocator settings; a SIGINT sent to the waiting process alone stops both, which ends by SIGINT', async () => {
    const { parent, child, exited } = await startLongTrain();
    const environ = readFileSync(`/proc/${child}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes(`MALLOC_MMAP_THRESHOLD_=${TENSOR_MALLOC_THRESHOLD}`), 'the child has the mmap threshold');
    assert.ok(environ.includes(`MALLOC_TRIM_THRESHOLD_=${TENSOR_MALLOC_THRESHOLD}`), 'the child has the trim threshold');
    await sleep(500);
    parent.kill('SIGINT');
    assert.deepEqual(await exited, { code: null, signal: 'SIGINT' });
    assert.equal(running(child), false, 'the child ended before the waiting process');
  });

  it('stops when its waiting process is killed with SIGKILL', async () => {
    const { parent, child, exited } = await startLongTrain();
    // Past the child's start, where it begins to watch the waiting process.
    await until('the child’s own start', () => (readFileSync(`/proc/${child}/cmdline`, 'utf8').includes('train') ? true : undefined));
    await sleep(500);
    parent.kill('SIGKILL');
    assert.equal((await exited).signal, 'SIGKILL');
    await until('the orphaned child to stop', () => (running(child) ? undefined : true));
  });
});
