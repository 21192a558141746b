import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cli, fixtureManifest, makePointsDataset, mistake, tempDir } from './helpers.ts';

function project(backend: string): string {
  const dir = tempDir();
  makePointsDataset(path.join(dir, 'data'));
  writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ explainers: '  - difference', metrics: '  - mass' }).replace('backend: cpu', `backend: ${backend}`));
  return dir;
}


describe('backend choice', () => {
  it('auto takes the first backend that works, says why the others were passed over, and records it in tensor artifacts', () => {
    const dir = project('auto');
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const line = result.stdout.split('\n').find((l) => l.startsWith('backend: '));
    assert.ok(line, result.stdout);
    // This machine and CI have no CUDA provider and at most a software Vulkan driver: onnx:cpu is the first that works,
    // with the cores shared among the tensor workers (workers.gpu: 1 in the fixture, so one worker gets them all).
    const threads = os.availableParallelism();
    assert.match(line, new RegExp(`^backend: onnx:cpu on CPU \\(ONNX Runtime [\\d.]+\\), ${threads} threads? \\(passed over — onnx:cuda: .+; onnx:webgpu: .+\\)$`));
    // Looking for GPUs is quiet: no Dawn or provider-loader warnings on stderr.
    assert.equal(result.stderr, '');
    const trainDir = path.join(dir, 'runs/cache/train');
    const meta = JSON.parse(readFileSync(path.join(trainDir, readdirSync(trainDir)[0], 'meta.json'), 'utf8'));
    assert.deepEqual(meta.backend, { name: 'onnx:cpu', engine: 'onnx', device: line.match(/on (CPU \(ONNX Runtime [\d.]+\))/)![1], threads, tfjs: 'wasm' });
    const splitDir = path.join(dir, 'runs/cache/split');
    assert.equal(JSON.parse(readFileSync(path.join(splitDir, readdirSync(splitDir)[0], 'meta.json'), 'utf8')).backend, undefined, 'cpu tasks record no backend');
    // The results and the report say what ran the tensor work.
    const backends = JSON.parse(readFileSync(path.join(dir, 'runs/demo/results/backends.json'), 'utf8'));
    assert.deepEqual(
      backends.map((r: Record<string, unknown>) => [r.stage, r.backend, r.engine, r.threads, r.tasks]),
      [
        // Training runs on the onnx engine too.
        ['train', 'onnx:cpu', 'onnx', threads, 3],
        ['predict', 'onnx:cpu', 'onnx', threads, 3],
      ],
    );
    assert.match(readFileSync(path.join(dir, 'runs/demo/report.html'), 'utf8'), new RegExp(`Tensor work: onnx:cpu on CPU \\(ONNX Runtime [\\d.]+\\), ${threads} threads?\\.`));
  });

  it('a tfjs backend asked for by name still runs the sweep, and records its engine', () => {
    const dir = project('auto');
    const result = cli(['run', 'sweep.yaml', '--backend', 'wasm'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /^backend: wasm on CPU \(WebAssembly, single-threaded\)$/m);
    const trainDir = path.join(dir, 'runs/cache/train');
    const meta = JSON.parse(readFileSync(path.join(trainDir, readdirSync(trainDir)[0], 'meta.json'), 'utf8'));
    assert.deepEqual(meta.backend, { name: 'wasm', engine: 'tfjs', device: 'CPU (WebAssembly, single-threaded)' });
  });

  it('onnx:cpu with --threads: tensor workers × threads within the cores, the threads handed to every worker', () => {
    const dir = project('auto');
    const result = cli(['run', 'sweep.yaml', '--backend', 'onnx:cpu', '--threads', '1', '--workers', 'gpu=1'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /^backend: onnx:cpu on CPU \(ONNX Runtime [\d.]+\), 1 thread$/m);
    const trainDir = path.join(dir, 'runs/cache/train');
    for (const key of readdirSync(trainDir)) assert.equal(JSON.parse(readFileSync(path.join(trainDir, key, 'meta.json'), 'utf8')).backend.threads, 1);
    const cores = os.availableParallelism();
    const tooMany = cli(['run', 'sweep.yaml', '--backend', 'onnx:cpu', '--threads', String(cores), '--workers', 'gpu=2', '--only', 'train'], project('auto'));
    assert.equal(tooMany.code, 1);
    assert.match(tooMany.stderr, new RegExp(`^salgrid: --threads ${cores} × 2 tensor workers would run ${2 * cores} threads on ${cores} cores; make workers × threads at most ${cores}`));
  });

  it('--backend onnx runs a real network end to end (train, predict, explain, score on ONNX Runtime) and says so', () => {
    const dir = tempDir();
    writeFileSync(
      path.join(dir, 'sweep.yaml'),
      [
        'name: onnx',
        'dataset: { source: synthetic-hfus, params: { perClass: 4, size: 32, seed: 1 }, imageSize: [32, 32] }',
        'folds: { k: 2, seed: 1, only: [1] }',
        'training: { epochs: 1, batchSize: 4, seed: 1 }',
        'models: [small-cnn]',
        'explainers: [gradcam]',
        'metrics: [confidence-change]',
        'execution: { backend: wasm, workers: { gpu: 1 } }',
        '',
      ].join('\n'),
    );
    const result = cli(['run', 'sweep.yaml', '--backend', 'onnx', '--threads', '1'], dir, {}, 600_000);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout, /^backend: onnx:cpu on CPU \(ONNX Runtime [\d.]+\), 1 thread \(passed over — onnx:cuda: .+; onnx:webgpu: .+\)$/m);
    for (const stage of ['train', 'predict', 'explain', 'score']) {
      const stageDir = path.join(dir, 'runs/cache', stage);
      for (const key of readdirSync(stageDir)) {
        const meta = JSON.parse(readFileSync(path.join(stageDir, key, 'meta.json'), 'utf8'));
        assert.equal(meta.backend.name, 'onnx:cpu', `${stage} ${key}`);
        assert.equal(meta.backend.threads, 1);
      }
    }
    assert.match(readFileSync(path.join(dir, 'runs/onnx/report.html'), 'utf8'), /Tensor work: onnx:cpu on CPU \(ONNX Runtime [\d.]+\), 1 thread\./);
  });

  it('a named backend that is not installed is one clear error saying how to get it', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'tensorflow'], project('cpu'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^salgrid: the tensorflow backend is not available here \(@tensorflow\/tfjs-node is not installed.*\); install @tensorflow\/tfjs-node-gpu \(NVIDIA GPU with CUDA 11\.2 and cuDNN 8\.1\) or @tensorflow\/tfjs-node \(CPU\).*, or use --backend auto\.\n$/);
  });

  it('refuses a software WebGPU adapter unless allowed', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'webgpu'], project('cpu'));
    // Dawn is asked in a child process: what it printed (no Vulkan, or only lavapipe) is in salgrid's one line, not beside it.
    mistake(result, /^salgrid: the webgpu backend is not available here \(.+\); webgpu needs a GPU with a Vulkan driver and the optional package `webgpu`.*, or use --backend auto\.$/);
  });

  it('rejects an unknown backend name, suggesting the onnx device it may mean', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'cuda'], project('cpu'));
    mistake(result, /--backend takes auto, onnx, onnx:cuda, onnx:webgpu, onnx:cpu, tensorflow, webgpu, wasm, cpu; got "cuda" \(did you mean onnx:cuda\?\)/);
  });
});
