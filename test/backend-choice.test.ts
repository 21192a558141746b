/**
 * Choosing the backend: names and requests, the onnx devices (probed for
 * real where this machine has them), the split of cores between tensor
 * workers and onnx threads, the environment of tensor workers, and quiet
 * probing (no Dawn warnings on stderr when there is no GPU).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import onnxProto from 'onnx-proto';
import { parseBackend, parseThreads, parseThreadsHere } from '../src/cli/context.ts';
import { isUserError } from '../src/core/errors.ts';
import { tensorWorkerEnv, TENSOR_MALLOC_THRESHOLD } from '../src/core/exec/tensor-env.js';
import { sizeTensorWorkers } from '../src/core/exec/tensor-workers.ts';
import { backendRows, describeBackendRow } from '../src/core/report/backends.ts';
import { Store } from '../src/core/store/store.ts';
import { BACKEND_NAMES, candidates, satisfies, suggestBackend } from '../src/core/tensor/backend-names.ts';
import { backendRecord, describeBackend, initBackend, runsOnCpu } from '../src/core/tensor/backend.ts';
import { engineChoice } from '../src/core/tensor/engine-choice.ts';
import { dawnSaid, loaderDetail, ortMessage, probeModel } from '../src/core/tensor/onnx-devices.ts';
import { firstStderrLine, stripAnsi } from '../src/core/tensor/quiet-probe.ts';
import { vulkanDriverFiles, vulkanDrivers, vulkanProblem } from '../src/core/tensor/vulkan.ts';
import { ROOT, tempDir } from './helpers.ts';

function withEnv<T>(vars: Record<string, string | undefined>, run: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  try {
    return run();
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

function userErrorMatching(pattern: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isUserError(error), `a UserError expected, got ${String(error)}`);
    assert.match((error as Error).message, pattern);
    return true;
  };
}

/** Whether this machine has lavapipe (scripts/install-lavapipe.sh): the onnx:webgpu probe can then succeed on a software adapter. */
const LAVAPIPE = vulkanDrivers().loader !== undefined && vulkanDrivers().drivers.some((d) => d.software);

describe('backend names and requests', () => {
  it('auto tries onnx (cuda, webgpu, cpu) first, then the tfjs backends; onnx tries its devices', () => {
    assert.deepEqual(candidates('auto'), ['onnx:cuda', 'onnx:webgpu', 'onnx:cpu', 'tensorflow', 'webgpu', 'wasm', 'cpu']);
    assert.deepEqual(candidates('onnx'), ['onnx:cuda', 'onnx:webgpu', 'onnx:cpu']);
    assert.deepEqual(candidates('wasm'), ['wasm']);
    assert.equal(BACKEND_NAMES.length, 7);
  });

  it('a started backend satisfies auto, its own name, and onnx when it is an onnx device', () => {
    assert.ok(satisfies('onnx:cpu', 'auto'));
    assert.ok(satisfies('onnx:cpu', 'onnx'));
    assert.ok(satisfies('onnx:cpu', 'onnx:cpu'));
    assert.ok(!satisfies('onnx:cpu', 'onnx:webgpu'));
    assert.ok(!satisfies('wasm', 'onnx'));
    assert.ok(!satisfies('wasm', 'cpu'));
  });

  it('--backend accepts every request and answers a near miss with the name it may mean', () => {
    for (const name of ['auto', 'onnx', 'onnx:cuda', 'onnx:webgpu', 'onnx:cpu', 'tensorflow', 'webgpu', 'wasm', 'cpu']) assert.equal(parseBackend(name), name);
    assert.equal(parseBackend(undefined), undefined);
    assert.throws(() => parseBackend('cuda'), userErrorMatching(/^--backend takes auto, onnx, onnx:cuda, onnx:webgpu, onnx:cpu, tensorflow, webgpu, wasm, cpu; got "cuda" \(did you mean onnx:cuda\?\)\.$/));
    assert.throws(() => parseBackend('gpu'), userErrorMatching(/got "gpu"\.$/));
    assert.equal(suggestBackend('onnx-cpu'), 'onnx:cpu');
    assert.equal(suggestBackend('ONNX:WebGPU'), 'onnx:webgpu');
    assert.equal(suggestBackend('onnxcuda'), 'onnx:cuda');
    assert.equal(suggestBackend('metal'), undefined);
  });

  it('--threads takes a whole number ≥ 1, and at most the cores where one task runs', () => {
    assert.equal(parseThreads('4'), 4);
    assert.equal(parseThreads(undefined), undefined);
    for (const bad of ['0', '-1', '1.5', 'two', '']) assert.throws(() => parseThreads(bad), userErrorMatching(/^--threads takes a whole number ≥ 1, got/));
    // A command running one task here (predict, explain, score, task run): at most the cores.
    const cores = os.availableParallelism();
    assert.equal(parseThreadsHere(String(cores)), cores);
    assert.throws(() => parseThreadsHere(String(cores + 1)), userErrorMatching(new RegExp(`^--threads ${cores + 1} is more than the ${cores} cores here; give at most ${cores}\\.$`)));
  });

  it('onnx:cpu, wasm, cpu and tensorflow without a GPU compute on the CPU', () => {
    assert.ok(runsOnCpu('onnx:cpu', 0));
    assert.ok(runsOnCpu('onnx:cpu', 2));
    assert.ok(!runsOnCpu('onnx:webgpu', 0));
    assert.ok(!runsOnCpu('onnx:cuda', 1));
    assert.ok(runsOnCpu('wasm', 1));
    assert.ok(runsOnCpu('tensorflow', 0));
    assert.ok(!runsOnCpu('tensorflow', 1));
  });
});

describe('tensor workers × onnx threads', () => {
  const size = (request: Partial<Parameters<typeof sizeTensorWorkers>[0]>) => sizeTensorWorkers({ cores: 8, gpus: 0, cpuBound: true, workers: 'auto', threads: 'auto', threadsFrom: '--threads', ...request });

  it('auto on a CPU backend: one worker per core, one thread each', () => {
    assert.deepEqual(size({}), { workers: 8, threads: 1 });
    assert.deepEqual(size({ cores: 1 }), { workers: 1, threads: 1 });
  });

  it('given workers share the cores as threads; given threads set the number of workers', () => {
    assert.deepEqual(size({ workers: 2 }), { workers: 2, threads: 4 });
    assert.deepEqual(size({ workers: 3 }), { workers: 3, threads: 2 });
    assert.deepEqual(size({ threads: 4 }), { workers: 2, threads: 4 });
    assert.deepEqual(size({ threads: 3 }), { workers: 2, threads: 3 });
    assert.deepEqual(size({ workers: 2, threads: 4 }), { workers: 2, threads: 4 });
    // More workers than cores is the user's to ask (as before); the threads never go below one.
    assert.deepEqual(size({ workers: 12 }), { workers: 12, threads: 1 });
  });

  it('GPU backends: one worker per GPU, the cores shared among them', () => {
    assert.deepEqual(size({ cpuBound: false, gpus: 2 }), { workers: 2, threads: 4 });
    assert.deepEqual(size({ cpuBound: false, gpus: 0 }), { workers: 1, threads: 8 });
  });

  it('threads × workers beyond the cores is a user error saying what fits', () => {
    assert.throws(() => size({ workers: 4, threads: 4 }), userErrorMatching(/^--threads 4 × 4 tensor workers would run 16 threads on 8 cores; make workers × threads at most 8 \(e\.g\. --threads 2\)\.$/));
    assert.throws(() => size({ threads: 16, threadsFrom: 'execution.threads' }), userErrorMatching(/^execution\.threads 16 is more than the 8 cores here; give at most 8\.$/));
    assert.throws(() => size({ cpuBound: false, gpus: 4, threads: 4 }), userErrorMatching(/4 × 4 tensor workers would run 16 threads on 8 cores/));
  });
});

describe('the environment of tensor workers', () => {
  it('raises glibc’s mmap and trim thresholds, keeping values the user set', () => {
    const env = tensorWorkerEnv({ PATH: '/bin', MALLOC_TRIM_THRESHOLD_: '12345' });
    assert.equal(env.MALLOC_MMAP_THRESHOLD_, TENSOR_MALLOC_THRESHOLD);
    assert.equal(env.MALLOC_TRIM_THRESHOLD_, '12345');
    assert.equal(env.PATH, '/bin');
    assert.ok(Number(TENSOR_MALLOC_THRESHOLD) >= 64 * 1024 * 1024, 'above the size of the outputs it is for');
  });
});

describe('what the probes quote', () => {
  it('ONNX Runtime’s message without its C++ location and assertion', () => {
    const raw =
      '/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:87 onnxruntime::webgpu::WebGpuContext::Initialize(…)::<lambda()> status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters';
    assert.equal(ortMessage(raw), 'Failed to get a WebGPU adapter: No supported adapters');
    assert.equal(ortMessage('OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library'), 'OrtSessionOptionsAppendExecutionProvider_Cuda: Failed to load shared library');
    assert.equal(ortMessage(undefined), 'no reason given');
  });

  it('the loader’s reason for a provider that did not load, and Dawn’s warning without its source location', () => {
    const cuda = stripAnsi(
      '\u001b[1;31m2026-01-01 [E:onnxruntime:onnxruntime-node, provider_bridge_ort.cc:2002 Create] /onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1760 void onnxruntime::ProviderSharedLibrary::Ensure() [ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: No such file or directory\n\u001b[m\n',
    );
    assert.equal(loaderDetail(cuda), 'Failed to load library libonnxruntime_providers_cuda.so with error: libcudnn.so.9: cannot open shared object file: No such file or directory');
    const dawn = "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory\n    at operator() (/home/runner/work/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)\n";
    assert.equal(dawnSaid(dawn), "Dawn: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory");
    assert.equal(firstStderrLine('\n    at x (y.cc:1)\n'), undefined);
  });

  it('the probe graph is one Relu, opset 17, that every provider has', () => {
    const model = onnxProto.onnx.ModelProto.decode(probeModel());
    assert.deepEqual(model.graph?.node?.map((n) => n.opType), ['Relu']);
    assert.equal(Number(model.opsetImport?.[0].version), 17);
  });
});

describe('looking for Vulkan without loading it', () => {
  it('reads the drivers the loader would (VK_ICD_FILENAMES first) and tells lavapipe from a GPU', () => {
    const dir = tempDir();
    const icd = path.join(dir, 'icd.d');
    mkdirSync(icd);
    writeFileSync(path.join(icd, 'lvp_icd.x86_64.json'), JSON.stringify({ ICD: { library_path: '/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so' } }));
    writeFileSync(path.join(icd, 'nvidia_icd.json'), JSON.stringify({ ICD: { library_path: 'libGLX_nvidia.so.0' } }));
    const files = withEnv({ VK_ICD_FILENAMES: icd, VK_DRIVER_FILES: undefined, VK_ADD_DRIVER_FILES: undefined }, () => vulkanDriverFiles());
    assert.deepEqual(files.map((f) => path.basename(f)).sort(), ['lvp_icd.x86_64.json', 'nvidia_icd.json']);
    const none = withEnv({ VK_ICD_FILENAMES: '/nonexistent', VK_DRIVER_FILES: undefined, VK_ADD_DRIVER_FILES: undefined }, () => vulkanDriverFiles());
    assert.deepEqual(none, []);
  });

  it('says why Dawn would find no adapter: no loader, no driver, no GPU device, only a software driver', () => {
    const lvp = { file: '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', software: true };
    const intel = { file: '/usr/share/vulkan/icd.d/intel_icd.json', software: false };
    const loader = '/lib/libvulkan.so.1';
    const render = ['/dev/dri/renderD128'];
    assert.equal(vulkanProblem({ drivers: [intel], gpuDevices: render }, false), 'no Vulkan loader (libvulkan.so.1) installed');
    assert.match(vulkanProblem({ loader, drivers: [], gpuDevices: render }, false)!, /^no Vulkan driver installed/);
    // Mesa installs intel, radeon, … drivers beside lavapipe on any machine: without a device node they find nothing.
    assert.match(vulkanProblem({ loader, drivers: [intel], gpuDevices: [] }, false)!, /^no GPU device/);
    assert.match(vulkanProblem({ loader, drivers: [lvp, intel], gpuDevices: [] }, false)!, /^only a software Vulkan driver \(lvp_icd\.x86_64\.json\) and no GPU device; set execution\.allowSoftwareAdapter: true/);
    assert.equal(vulkanProblem({ loader, drivers: [lvp, intel], gpuDevices: [] }, true), undefined);
    assert.equal(vulkanProblem({ loader, drivers: [lvp, intel], gpuDevices: render }, false), undefined);
  });
});

describe('starting a backend in this process', () => {
  it('onnx:cpu sets the onnx engine with its threads and tfjs-wasm beside it; a tfjs backend sets the tfjs engine back', async () => {
    const info = await initBackend('onnx:cpu', { threads: 1 });
    assert.equal(info.name, 'onnx:cpu');
    assert.equal(info.engine, 'onnx');
    assert.match(info.device, /^CPU \(ONNX Runtime \d+\.\d+\.\d+\)$/);
    assert.deepEqual(engineChoice(), { engine: 'onnx', device: 'cpu', threads: 1 });
    // tfjs beside it for the per-image math: wasm, whose kernels are native code where tfjs-cpu's are JavaScript loops.
    assert.equal(tf.getBackend(), 'wasm');
    assert.equal(describeBackend(info), `backend: onnx:cpu on ${info.device}, 1 thread`);
    assert.deepEqual(backendRecord(info), { name: 'onnx:cpu', engine: 'onnx', device: info.device, threads: 1, tfjs: 'wasm' });
    // Asking again (auto, onnx) keeps the started backend; new threads reach the engine choice.
    assert.equal((await initBackend('onnx', { threads: 1 })).name, 'onnx:cpu');
    const more = await initBackend('auto', { threads: 2 });
    assert.equal(more.threads, 2);
    assert.deepEqual(engineChoice(), { engine: 'onnx', device: 'cpu', threads: 2 });

    const wasm = await initBackend('wasm');
    assert.equal(wasm.engine, 'tfjs');
    assert.equal(wasm.threads, undefined);
    assert.deepEqual(engineChoice(), { engine: 'tfjs' });
    assert.equal(describeBackend(wasm), 'backend: wasm on CPU (WebAssembly, single-threaded)');
    assert.deepEqual(backendRecord(wasm), { name: 'wasm', engine: 'tfjs', device: 'CPU (WebAssembly, single-threaded)' });
  });
});

/** Runs a backend choice in a fresh process (as a command would), with `env`, and returns its stdout line and stderr. */
function chooseInChild(request: string, options: { allowSoftwareAdapter?: boolean } = {}, env: NodeJS.ProcessEnv = {}): { stdout: string; stderr: string } {
  const script = `
    const { initBackend, describeBackend } = await import(${JSON.stringify(path.join(ROOT, 'src/core/tensor/backend.ts'))});
    try { console.log(describeBackend(await initBackend(${JSON.stringify(request)}, ${JSON.stringify(options)}))); }
    catch (error) { console.log('error: ' + error.message); }
  `;
  const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 120_000 });
  return { stdout: result.stdout.trim(), stderr: result.stderr };
}

describe('quiet probing', () => {
  // Without a Vulkan driver (this machine without lavapipe; with it, VK_ICD_FILENAMES pointing nowhere).
  const noVulkan = { VK_ICD_FILENAMES: '/nonexistent/icd.json' };

  it('auto on a machine without Vulkan prints no Dawn warning, and says why onnx:webgpu was passed over', () => {
    const { stdout, stderr } = chooseInChild('auto', {}, noVulkan);
    assert.match(stdout, /^backend: onnx:cpu on CPU \(ONNX Runtime [\d.]+\), \d+ threads? \(passed over — onnx:cuda: .+; onnx:webgpu: no Vulkan (loader|driver) .+\)$/);
    assert.equal(stderr, '');
  });

  it('asking for onnx:webgpu or webgpu by name without Vulkan: one message quoting why, nothing else on stderr', () => {
    const onnx = chooseInChild('onnx:webgpu', {}, noVulkan);
    assert.match(onnx.stdout, /^error: the onnx:webgpu backend is not available here \(its WebGPU provider did not start \(.*adapter.*\)\); onnx:webgpu needs a GPU/);
    assert.equal(onnx.stderr, '');
    const tfjs = chooseInChild('webgpu', {}, noVulkan);
    assert.match(tfjs.stdout, /^error: the webgpu backend is not available here \(no WebGPU adapter \(.+\)\); webgpu needs a GPU with a Vulkan driver/);
    assert.equal(tfjs.stderr, '');
  });

  it('onnx:webgpu runs on lavapipe when software adapters are allowed, and is refused otherwise', { skip: LAVAPIPE ? false : 'no lavapipe here (scripts/install-lavapipe.sh installs it)' }, () => {
    const refused = chooseInChild('onnx:webgpu');
    assert.match(refused.stdout, /^error: the onnx:webgpu backend is not available here \(only a software adapter/);
    const allowed = chooseInChild('onnx:webgpu', { allowSoftwareAdapter: true });
    assert.match(allowed.stdout, /^backend: onnx:webgpu on .+ \(software\) \(WebGPU, ONNX Runtime [\d.]+\), \d+ threads?$/);
    // auto passes over the software adapter quietly, without asking Dawn.
    const auto = chooseInChild('auto');
    assert.match(auto.stdout, /onnx:webgpu: only a software Vulkan driver/);
    assert.equal(auto.stderr, '');
  });
});

describe('the backends table', () => {
  it('counts the tensor tasks per stage and backend from their meta.json; cpu tasks and old artifacts count for none', async () => {
    const store = new Store(path.join(tempDir(), 'cache'));
    const meta = (stage: 'train' | 'predict' | 'score', key: string, backend?: object) => {
      const dir = store.dir(stage, key);
      mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dir, 'meta.json'), JSON.stringify({ key, stage, ...(backend ? { backend } : {}) }));
      return { stage, key };
    };
    const onnx = { name: 'onnx:cpu', engine: 'onnx', device: 'CPU (ONNX Runtime 1.23.2)', threads: 2, tfjs: 'wasm' };
    const cells = [
      meta('predict', 'p1', onnx),
      meta('train', 't1', onnx),
      meta('train', 't2', onnx),
      meta('train', 't3', { name: 'wasm', device: 'CPU (WebAssembly, single-threaded)' }),
      meta('score', 's1'),
    ];
    const rows = backendRows(cells, store);
    // A resumed sweep may mix backends (keys do not depend on them): the rows count each.
    assert.deepEqual(rows, [
      { stage: 'train', backend: 'onnx:cpu', engine: 'onnx', device: 'CPU (ONNX Runtime 1.23.2)', threads: 2, tasks: 2 },
      { stage: 'train', backend: 'wasm', engine: 'tfjs', device: 'CPU (WebAssembly, single-threaded)', threads: null, tasks: 1 },
      { stage: 'predict', backend: 'onnx:cpu', engine: 'onnx', device: 'CPU (ONNX Runtime 1.23.2)', threads: 2, tasks: 1 },
    ]);
    assert.equal(describeBackendRow(rows[2]), 'onnx:cpu on CPU (ONNX Runtime 1.23.2), 2 threads');
    assert.equal(describeBackendRow(rows[1]), 'wasm on CPU (WebAssembly, single-threaded)');
  });
});

