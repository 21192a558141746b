import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cli, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

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
    // This machine and CI have no tfjs-node and at most a software Vulkan driver: wasm is the first that works.
    assert.match(line, /^backend: wasm on CPU \(WebAssembly, single-threaded\) \(passed over — tensorflow: @tensorflow\/tfjs-node is not installed; .*webgpu: .+\)$/);
    const trainDir = path.join(dir, 'runs/cache/train');
    const meta = JSON.parse(readFileSync(path.join(trainDir, readdirSync(trainDir)[0], 'meta.json'), 'utf8'));
    assert.deepEqual(meta.backend, { name: 'wasm', device: 'CPU (WebAssembly, single-threaded)' });
    const splitDir = path.join(dir, 'runs/cache/split');
    assert.equal(JSON.parse(readFileSync(path.join(splitDir, readdirSync(splitDir)[0], 'meta.json'), 'utf8')).backend, undefined, 'cpu tasks record no backend');
  });

  it('a named backend that is not installed is one clear error saying how to get it', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'tensorflow'], project('cpu'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^salgrid: the tensorflow backend is not available here \(@tensorflow\/tfjs-node is not installed.*\); install @tensorflow\/tfjs-node-gpu \(NVIDIA GPU with CUDA 11\.2 and cuDNN 8\.1\) or @tensorflow\/tfjs-node \(CPU\).*, or use --backend auto\.\n$/);
  });

  it('refuses a software WebGPU adapter unless allowed', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'webgpu'], project('cpu'));
    assert.equal(result.code, 1);
    // Dawn itself may print adapter-limit warnings on a software driver; salgrid's own message is one line.
    assert.match(result.stderr, /^salgrid: the webgpu backend is not available here \(.+\); webgpu needs a GPU with a Vulkan driver and the optional package `webgpu`.*, or use --backend auto\.$/m);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('rejects an unknown backend name', () => {
    const result = cli(['run', 'sweep.yaml', '--backend', 'cuda'], project('cpu'));
    assert.equal(result.code, 1);
    assert.match(result.stderr, /--backend takes auto, tensorflow, webgpu, wasm, cpu; got "cuda"/);
  });
});
