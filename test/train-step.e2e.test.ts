/**
 * PyTorch's own training steps (`../shared/golden/train-step`, README
 * there) reproduced through the real CLI: `salgrid train` from the
 * torchvision goldens' state dicts, 3 steps of SGD or Adam on one fixed
 * batch of 6 (no shuffle, dropout 0), written as a .pth and compared tensor
 * by tensor — weights, running statistics (momentum 0.1, unbiased
 * variance) and num_batches_tracked — with the states PyTorch kept, and the
 * loss before each step with PyTorch's.
 *
 * Tolerances are the golden's: losses 1e-4 relative, each tensor within
 * 1e-4 × its largest absolute value; Adam's within 2e-4, because its first
 * step moves every weight by about lr · sign(gradient), so weights whose
 * gradient is near zero move by amounts that float32 rounding decides:
 * Debian's PyTorch 1.13 itself misses the DenseNet Adam golden by 1.1e-4
 * at features.denseblock1.denselayer1.conv2.weight (ours: 1.3e-4).
 *
 * Both engines run DenseNet's cases whole: on ONNX Runtime (onnx:cpu, the
 * default) every SGD tensor lies within 3.5e-7 of PyTorch's.
 *
 * MobileNetV2 (width 0.5 at 96×96: its last stages normalise 54 values per
 * channel), ResNet and GoogLeNet cannot be held to those tolerances by any
 * float32 implementation: a few pre-activations lie within rounding of a
 * ReLU's kink, so whether their gradient passes is rounding's choice, and
 * SGD's steps amplify that by orders of magnitude from step to step (Adam's
 * first step at once). PyTorch 1.13 on this CPU misses its own golden's
 * MobileNetV2 step 3 (loss 1.3738 against 1.3537) and 58 of the 262 tensors
 * of Adam's step 1. So for these the test checks what is well-defined (the
 * loss before the first step, and on tfjs's cpu MobileNetV2's first SGD
 * state) and then shows why the rest is not: the same engine, fed inputs
 * changed by one float32 ulp, ends further from itself than the tolerance
 * allows. Every op's weight gradient is checked on a well-conditioned
 * network in onnx-training.test.ts.
 *
 * The goldens' inputs and kept states live in ../shared/golden (CI always
 * has it; DenseNet's small ones are copied into test/fixtures); a case
 * whose files are absent says so and skips.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readNpy, writeNpy } from '../src/core/io/npy.ts';
import { readStateDict, toFloat32, type StateDict } from '../src/core/io/pytorch-state-dict.ts';
import { ROOT, cliAsync, largestError, mistake, ok, tempDir } from './helpers.ts';

const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'golden');
const SHARED = path.join(ROOT, '..', 'shared', 'golden');
/**
 * The tfjs engine's backends: wasm runs the cases quickly; cpu, its
 * reference, is slower (DenseNet's three steps: 100 s against 10 s) but is
 * the one that holds MobileNetV2's first SGD step and DenseNet's Adam steps
 * within the tolerance (wasm's rounding, amplified as described above, ends
 * 4e-3 and 9e-4 away).
 */
const FAST = 'wasm';
const REFERENCE = 'cpu';
/** The native engine (ONNX Runtime's training graphs): seconds per case. */
const NATIVE = 'onnx:cpu';

const ARCH: Record<string, string[]> = {
  mobilenet_v2: ['--arch', 'mobilenet-v2'],
  densenet: ['--arch', 'densenet'],
  resnet: ['--arch', 'resnet'],
  googlenet: ['--arch', 'googlenet'],
};

function archParams(family: string, c: Record<string, unknown>): string[] {
  const pairs: Record<string, () => string[]> = {
    mobilenet_v2: () => [`widthMult=${c.width_mult}`],
    densenet: () => [`growthRate=${c.growth_rate}`, `blockConfig=[${(c.block_config as number[]).join(',')}]`, `initFeatures=${c.num_init_features}`],
    resnet: () => [`layers=[${(c.layers as number[]).join(',')}]`, `widthPerGroup=${c.width_per_group}`],
    googlenet: () => [`transformInput=${c.transform_input}`],
  };
  return [...ARCH[family], ...pairs[family]().flatMap((p) => ['--arch-param', p])];
}

/** The first folder of `relative` under the fixtures or ../shared/golden that holds every one of `files`. */
function find(relative: string, files: string[]): string | undefined {
  return [path.join(FIXTURES, relative), path.join(SHARED, relative)].find((dir) => files.every((f) => existsSync(path.join(dir, f))));
}

interface Case {
  name: string;
  family: string;
  dir: string;
  start: string;
  config: { optimizer: Record<string, unknown>; losses: number[]; steps: number };
  arch: string[];
  keptSteps: number[];
}

function loadCase(name: string): Case | string {
  const family = name.split('/')[1];
  const dir = find(path.join('train-step', name), ['config.json', 'inputs.npy', 'labels.npy']);
  if (!dir) return `train-step/${name} is neither in test/fixtures/golden nor in ../shared/golden`;
  const startDir = find(path.join('torchvision', family), ['config.json', 'state_dict.pth']);
  if (!startDir) return `torchvision/${family}/state_dict.pth is neither in test/fixtures/golden nor in ../shared/golden`;
  const read = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
  const keptSteps = [1, 2, 3].filter((k) => existsSync(path.join(dir, `step-${k}.pth`)));
  return { name, family, dir, start: path.join(startDir, 'state_dict.pth'), config: read(path.join(dir, 'config.json')), arch: archParams(family, read(path.join(startDir, 'config.json'))), keptSteps };
}

const work = tempDir('salgrid-train-step-');

/** Runs of `salgrid train` already made in this file, by case, steps, inputs and backend: the same run gives the same file. */
const runs = new Map<string, Promise<{ losses: number[]; pth: string }>>();

/** `salgrid train` on the case's batch; returns the losses it printed and the .pth it wrote (a run made before with the same arguments, reused). */
function train(c: Case, steps: number, tag: string, options: { inputs?: string; backend?: string } = {}): Promise<{ losses: number[]; pth: string }> {
  const { inputs = path.join(c.dir, 'inputs.npy'), backend = FAST } = options;
  const key = JSON.stringify([c.name, steps, inputs, backend]);
  let run = runs.get(key);
  if (!run) {
    run = trainOnce(c, steps, tag, inputs, backend);
    runs.set(key, run);
  }
  return run;
}

async function trainOnce(c: Case, steps: number, tag: string, inputs: string, backend: string): Promise<{ losses: number[]; pth: string }> {
  const pth = path.join(work, `${c.name.replace('/', '-')}-${tag}-${backend.replace(':', '-')}-${steps}.pth`);
  const result = ok(
    await cliAsync(
      ['train', '--model', c.start, ...c.arch, '--input', inputs, '--labels', path.join(c.dir, 'labels.npy'), '--steps', String(steps), '--batch-size', '6', '--no-shuffle', '--dropout', '0', '--optimizer', JSON.stringify(c.config.optimizer), '--backend', backend, '--out', pth],
      work,
    ).done,
  );
  const losses = [...result.stdout.matchAll(/^step +\d+\/\d+ +loss ([\d.]+)$/gm)].map((m) => Number(m[1]));
  assert.equal(losses.length, steps, `salgrid train printed ${losses.length} losses for ${steps} steps:\n${result.stdout}`);
  return { losses, pth };
}

/** Tensors beyond `tolerance` × their largest absolute value in `expected`, worst first. */
function mismatches(actual: StateDict, expected: StateDict, tolerance: number): string[] {
  assert.deepEqual([...actual.names].sort(), [...expected.names].sort(), 'the state dict keys differ from PyTorch’s');
  const bad: { key: string; error: number }[] = [];
  for (const key of expected.names) {
    const a = actual.get(key)!;
    const e = expected.get(key)!;
    assert.deepEqual(a.shape, e.shape, `${key}: shape [${a.shape}] against PyTorch's [${e.shape}]`);
    if (key.endsWith('num_batches_tracked')) {
      assert.equal(Number(a.data[0]), Number(e.data[0]), `${key}: ${a.data[0]} against PyTorch's ${e.data[0]}`);
      continue;
    }
    const { error: worst, scale } = largestError(toFloat32(a), toFloat32(e));
    const error = worst / (scale || 1);
    if (!(error <= tolerance)) bad.push({ key, error });
  }
  return bad.sort((x, y) => y.error - x.error).map((b) => `${b.key} (${b.error.toExponential(2)})`);
}

function assertLosses(actual: number[], expected: number[], what: string): void {
  actual.forEach((loss, i) => {
    const relative = Math.abs(loss - expected[i]) / Math.abs(expected[i]);
    // The CLI prints 6 decimals: allow their rounding on top of the tolerance.
    assert.ok(relative <= 1e-4 + 5e-7 / Math.abs(expected[i]), `${what}: loss before step ${i + 1} is ${loss}, PyTorch's ${expected[i]} (${relative.toExponential(2)} relative)`);
  });
}

/** The case's batch with every value changed by at most one float32 ulp. */
async function nudgedInputs(c: Case): Promise<string> {
  const inputs = await readNpy(path.join(c.dir, 'inputs.npy'));
  const nudged = Float32Array.from(inputs.data as Float32Array, (v) => Math.fround(v * (1 + 2 ** -23)));
  const file = path.join(work, `inputs-nudged-${c.family}.npy`);
  await writeNpy(file, { dtype: 'float32', shape: inputs.shape, data: nudged });
  return file;
}

const tolerance = (c: Case) => ('adam' in c.config.optimizer ? 2e-4 : 1e-4);

describe('salgrid train reproduces PyTorch’s training steps (onnx engine: onnx:cpu)', () => {
  for (const name of ['sgd/densenet', 'adam/densenet']) {
    it(`${name}: the loss before each step and every kept state`, async (t) => {
      const c = loadCase(name);
      if (typeof c === 'string') return t.skip(c);
      const { losses, pth } = await train(c, 3, 'steps', { backend: NATIVE });
      assertLosses(losses, c.config.losses, name);
      for (const k of c.keptSteps) {
        const state = k === 3 ? pth : (await train(c, k, 'steps', { backend: NATIVE })).pth;
        const bad = mismatches(await readStateDict(state), await readStateDict(path.join(c.dir, `step-${k}.pth`)), tolerance(c));
        assert.deepEqual(bad, [], `${name}, after step ${k}: tensors beyond ${tolerance(c)} × their largest value: ${bad.slice(0, 5).join(', ')}`);
      }
    });
  }

  // The other families' cases are ill-conditioned (below): what is well-defined is the loss before the first step.
  for (const name of ['sgd/mobilenet_v2', 'adam/mobilenet_v2', 'sgd/resnet', 'sgd/googlenet']) {
    it(`${name}: the loss before the first step`, async (t) => {
      const c = loadCase(name);
      if (typeof c === 'string') return t.skip(c);
      assertLosses((await train(c, 1, 'steps', { backend: NATIVE })).losses, c.config.losses.slice(0, 1), name);
    });
  }

  // Measured by hand (2026-12-04) on onnx:cpu: DenseNet's SGD states lie within 3.5e-7 of PyTorch's. ResNet's second loss
  // is 2.4e-4 off (0.996335 against 0.996576) and 84 of its 122 step-3 tensors beyond the tolerance — the same count as
  // tfjs-wasm's — because one pre-activation of layer2.1 (image 1, channel 474) lies 3.3e-6 from ReLU's kink: float32
  // rounding decides whether its gradient passes, and that one value moves layer2.1.bn3.bias's gradient by 2.5e-2 of its
  // largest value (found against a float64 PyTorch run). Such values make these cases a test of rounding, not of
  // training: a one-ulp change of the inputs moves ONNX Runtime's own state after the first step beyond the tolerance.
  it('MobileNetV2’s, ResNet’s and GoogLeNet’s first steps depend on float32 rounding: one ulp in the inputs moves them beyond the tolerance', async (t) => {
    for (const name of ['sgd/mobilenet_v2', 'sgd/resnet', 'sgd/googlenet']) {
      const c = loadCase(name);
      if (typeof c === 'string') return t.skip(c);
      const file = await nudgedInputs(c);
      const [plain, moved] = [await train(c, 1, 'plain', { backend: NATIVE }), await train(c, 1, 'nudged', { inputs: file, backend: NATIVE })];
      const apart = mismatches(await readStateDict(moved.pth), await readStateDict(plain.pth), tolerance(c));
      assert.ok(apart.length > 0, `${name}: one ulp in the inputs left every tensor after step 1 within the tolerance; then this case should be checked against PyTorch instead`);
    }
    // DenseNet's, checked above, is not so: the same change leaves its third state within 1e-6.
    const densenet = loadCase('sgd/densenet');
    if (typeof densenet === 'string') return t.skip(densenet);
    const [plain, moved] = [await train(densenet, 3, 'plain', { backend: NATIVE }), await train(densenet, 3, 'nudged', { inputs: await nudgedInputs(densenet), backend: NATIVE })];
    assert.deepEqual(mismatches(await readStateDict(moved.pth), await readStateDict(plain.pth), 1e-6), []);
  });
});

describe('salgrid train reproduces PyTorch’s training steps (tfjs engine: wasm, and cpu where noted)', () => {
  // ResNet's and GoogLeNet's cases are not run on tfjs: on its cpu backend they take minutes, and they are as
  // ill-conditioned as MobileNetV2's (shown on the onnx engine above). Measured by hand (2026-12-04): ResNet on tfjs cpu
  // happens to round layer2.1's near-kink value as PyTorch does and matches every loss to 1e-6 and every tensor of
  // step 3, where Debian's PyTorch 1.13 misses 24 of its 102 tensors and wasm 84 (its second loss 2.4e-4 off);
  // GoogLeNet: PyTorch 1.13 misses 274 of 287 tensors of step 3 and its third loss (1.0216 against 1.0144).
  for (const name of ['sgd/densenet', 'adam/densenet']) {
    it(`${name}: the loss before each step and the kept states, running statistics included`, async (t) => {
      const c = loadCase(name);
      if (typeof c === 'string') return t.skip(c);
      const { losses, pth } = await train(c, 3, 'steps');
      assertLosses(losses, c.config.losses, name);
      // Adam's states on wasm end 9e-4 away at the weights its sign-like first update makes sensitive (see above): its
      // first state is checked on cpu, and its third, which compounds the same sensitivity, only through the losses
      // (on cpu it is within 2e-4 too, but three more cpu steps cost a minute of npm test).
      const adam = 'adam' in c.config.optimizer;
      for (const k of adam ? [1] : c.keptSteps) {
        const state = k === 3 ? pth : (await train(c, k, 'steps', { backend: adam ? REFERENCE : FAST })).pth;
        const bad = mismatches(await readStateDict(state), await readStateDict(path.join(c.dir, `step-${k}.pth`)), tolerance(c));
        assert.deepEqual(bad, [], `${name}, after step ${k}: tensors beyond ${tolerance(c)} × their largest value: ${bad.slice(0, 5).join(', ')}`);
      }
    });
  }

  it('sgd/mobilenet_v2: the loss before the first step and the state after it (cpu)', async (t) => {
    const c = loadCase('sgd/mobilenet_v2');
    if (typeof c === 'string') return t.skip(c);
    const first = await train(c, 1, 'steps', { backend: REFERENCE });
    assertLosses(first.losses, c.config.losses.slice(0, 1), c.name);
    const bad = mismatches(await readStateDict(first.pth), await readStateDict(path.join(c.dir, 'step-1.pth')), tolerance(c));
    assert.deepEqual(bad, [], `after step 1: ${bad.slice(0, 5).join(', ')}`);
  });

  it('adam/mobilenet_v2: the loss before the first step', async (t) => {
    const c = loadCase('adam/mobilenet_v2');
    if (typeof c === 'string') return t.skip(c);
    assertLosses((await train(c, 1, 'steps')).losses, c.config.losses.slice(0, 1), c.name);
  });

  it('answers mistakes in one line: no --steps or --epochs, labels of the wrong length or class, a bad optimizer', async (t) => {
    const c = loadCase('sgd/densenet');
    if (typeof c === 'string') return t.skip(c);
    const base = ['train', '--model', c.start, ...c.arch, '--input', path.join(c.dir, 'inputs.npy'), '--backend', FAST];
    const run = (...args: string[]) => cliAsync([...base, ...args], work).done;
    const out = ['--out', path.join(work, 'never.pth')];
    mistake(await run('--labels', path.join(c.dir, 'labels.npy'), ...out), /needs exactly one of --steps K .* and --epochs E/);
    const short = path.join(work, 'labels-short.npy');
    await writeNpy(short, { dtype: 'int32', shape: [2], data: Int32Array.of(0, 1) });
    mistake(await run('--labels', short, '--steps', '1', ...out), /labels-short\.npy has shape \(2\), but the inputs are 6: --labels needs one class index per input, shape \(6,\)/);
    const wrong = path.join(work, 'labels-wrong.npy');
    await writeNpy(wrong, { dtype: 'int32', shape: [6], data: Int32Array.of(0, 1, 2, 3, 4, 0) });
    mistake(await run('--labels', wrong, '--steps', '1', ...out), /gives input 4 the class 4, but the model has 4 classes \(0 to 3\)/);
    mistake(await run('--labels', path.join(c.dir, 'labels.npy'), '--steps', '1', '--optimizer', '{ sgd: { lr: 0.1 } }', ...out), /--optimizer sgd\.lr: unknown field "lr" \(allowed: learningRate/);
    assert.ok(!existsSync(path.join(work, 'never.pth')), 'a refused run wrote its output');
  });

  it('MobileNetV2’s later states depend on float32 rounding: one ulp in the inputs moves them beyond the tolerance', async (t) => {
    const sgd = loadCase('sgd/mobilenet_v2');
    const adam = loadCase('adam/mobilenet_v2');
    if (typeof sgd === 'string') return t.skip(sgd);
    if (typeof adam === 'string') return t.skip(adam);
    const file = await nudgedInputs(sgd);
    for (const [c, steps] of [[sgd, 3], [adam, 1]] as const) {
      const [plain, moved] = await Promise.all([train(c, steps, 'plain'), train(c, steps, 'nudged', { inputs: file })]);
      const apart = mismatches(await readStateDict(moved.pth), await readStateDict(plain.pth), tolerance(c));
      assert.ok(apart.length > 0, `${c.name}: one ulp in the inputs left every tensor after step ${steps} within the tolerance; then this case should be checked against PyTorch instead`);
    }
  });
});
