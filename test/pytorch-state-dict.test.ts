import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isUserError } from '../src/core/errors.ts';
import { readStateDict, toFloat32, type StateDict, type TorchTensor } from '../src/core/io/pytorch-state-dict.ts';
import { ROOT, tempDir } from './helpers.ts';

const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const TORCHVISION = path.join(FIXTURES, 'golden', 'torchvision');
/** resnet and googlenet are 14 and 22 MB, too big to copy into the repository; they are checked where the shared goldens exist. */
const SHARED_TORCHVISION = path.join(ROOT, '..', 'shared', 'golden', 'torchvision');
const REFERENCE = path.join(FIXTURES, 'pytorch', 'reference_state_dict.py');
const MAKE_ARCHIVES = path.join(FIXTURES, 'pytorch', 'make_archives.py');

interface Summary { name: string; shape: number[]; dtype: string; first: number[]; sum: number; weighted: number }

/** Python (zipfile + pickle + numpy, no torch) is the independent reader the TypeScript one is checked against. */
function python(args: string[]): string {
  const result = spawnSync('python3', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `python3 with numpy failed: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

function reference(file: string): Summary[] {
  return JSON.parse(python([REFERENCE, file])) as Summary[];
}

function close(actual: number, expected: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= 1e-6 * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);
}

function values(tensor: TorchTensor): Float64Array {
  // int64 goes through BigInt so that values past 2^24 are compared exactly, not via float32.
  if (tensor.dtype === 'int64') return Float64Array.from(tensor.data as BigInt64Array, Number);
  return Float64Array.from(toFloat32(tensor));
}

function assertMatchesReference(state: StateDict, expected: Summary[]): void {
  assert.deepEqual([...state.names], expected.map((e) => e.name));
  assert.deepEqual([...state.keys()], expected.map((e) => e.name));
  for (const e of expected) {
    const tensor = state.get(e.name)!;
    assert.deepEqual(tensor.shape, e.shape, e.name);
    assert.equal(tensor.dtype, e.dtype, e.name);
    const v = values(tensor);
    assert.equal(v.length, e.shape.reduce((a, b) => a * b, 1), `${e.name} length`);
    let sum = 0;
    let weighted = 0;
    for (let i = 0; i < v.length; i++) { sum += v[i]; weighted += v[i] * ((i % 13) + 1); }
    e.first.forEach((x, i) => close(v[i], x, `${e.name}[${i}]`));
    close(sum, e.sum, `${e.name} sum`);
    close(weighted, e.weighted, `${e.name} weighted sum`);
  }
}

async function rejectsWithUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(isUserError(error), `expected a UserError, got ${error.stack}`);
    assert.match(error.message, pattern);
    return true;
  });
}

const BUFFERS = /\.(running_mean|running_var|num_batches_tracked)$/;

function familyDirs(): Array<{ family: string; dir: string }> {
  return [
    ...['densenet', 'mobilenet_v2'].map((family) => ({ family, dir: path.join(TORCHVISION, family) })),
    ...['resnet', 'googlenet'].map((family) => ({ family, dir: path.join(SHARED_TORCHVISION, family) })),
  ];
}

describe('pytorch state dicts: torchvision goldens', () => {
  for (const { family, dir } of familyDirs()) {
    it(`${family}: parameter count, names, dtypes and values match Python's reading`, async (t) => {
      const file = path.join(dir, 'state_dict.pth');
      if (!existsSync(file)) {
        // CI and developers have ../shared beside the checkout; a user's clone does not.
        t.skip(`${file} is not here (too large to copy into the repository)`);
        return;
      }
      const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as { params: number; num_classes: number };
      const state = await readStateDict(file);
      let params = 0;
      for (const [name, tensor] of state) {
        if (BUFFERS.test(name)) {
          assert.equal(tensor.dtype, name.endsWith('num_batches_tracked') ? 'int64' : 'float32', name);
          if (name.endsWith('num_batches_tracked')) assert.deepEqual(tensor.shape, []);
        } else {
          assert.equal(tensor.dtype, 'float32', name);
          params += tensor.data.length;
        }
      }
      assert.equal(params, config.params);
      // The 4-class head is what an importer sizes the dense layer from.
      const head = state.names.filter((n) => n.endsWith('.weight') && state.get(n)!.shape.length === 2).at(-1)!;
      assert.equal(state.get(head)!.shape[0], config.num_classes);
      assertMatchesReference(state, reference(file));
    });
  }
});

describe('pytorch state dicts: hand-built archives', () => {
  const dir = tempDir('salgrid-pth-');
  python([MAKE_ARCHIVES, dir]);

  it('copies non-contiguous, offset, stride-0 and 0-d views into C order; int64, float64 and float16 storages', async () => {
    const file = path.join(dir, 'strided.pth');
    const state = await readStateDict(file);
    assertMatchesReference(state, reference(file));
    assert.deepEqual([...state.get('transposed')!.data as Float32Array], [-3, -1.5, 0, 1.5, -2.5, -1, 0.5, 2, -2, -0.5, 1, 2.5]);
    assert.equal((state.get('scalar')!.data as BigInt64Array)[0], 2n ** 40n);
    assert.deepEqual([...toFloat32(state.get('halves')!)].slice(0, 3), [0.5, -2, 65504]);
  });

  it('reads big-endian archives and DEFLATE-compressed entries to the same values', async () => {
    const expected = reference(path.join(dir, 'strided.pth'));
    assertMatchesReference(await readStateDict(path.join(dir, 'big.pth')), expected);
    assertMatchesReference(await readStateDict(path.join(dir, 'deflate.pth')), expected);
  });

  it('refuses a pickled model (unknown global) and unknown opcodes, naming the file', async () => {
    await rejectsWithUserError(readStateDict(path.join(dir, 'model.pth')), /model\.pth.*unsupported global mymodels\.Net/);
    await rejectsWithUserError(readStateDict(path.join(dir, 'badop.pth')), /badop\.pth.*unsupported pickle opcode 0xff/);
  });

  it('tells the user to re-save legacy (pre-1.6) files', async () => {
    await rejectsWithUserError(readStateDict(path.join(dir, 'legacy.pth')), /legacy\.pth.*legacy \(pre-1\.6\) format.*re-save/);
  });
});

describe('pytorch state dicts: unreadable files', () => {
  const dir = tempDir('salgrid-pth-bad-');

  it('names a missing file', async () => {
    await rejectsWithUserError(readStateDict(path.join(dir, 'absent.pth')), /not found: .*absent\.pth/);
  });

  it('rejects a text file named .pth', async () => {
    const file = path.join(dir, 'notes.pth');
    writeFileSync(file, 'these are not weights\n');
    await rejectsWithUserError(readStateDict(file), /notes\.pth is not a readable PyTorch state dict/);
  });

  it('rejects truncated archives, whether the cut loses the directory or a storage', async () => {
    const whole = readFileSync(path.join(TORCHVISION, 'densenet', 'state_dict.pth'));
    const head = path.join(dir, 'head.pth');
    writeFileSync(head, whole.subarray(0, whole.length >> 1));
    await rejectsWithUserError(readStateDict(head), /head\.pth is not a readable PyTorch state dict.*end-of-central-directory/);
    // Keep the central directory but drop bytes before it, so entries point past the shortened data.
    const cut = path.join(dir, 'cut.pth');
    writeFileSync(cut, Buffer.concat([whole.subarray(0, 30_000), whole.subarray(whole.length - 20_000)]));
    await rejectsWithUserError(readStateDict(cut), /cut\.pth (is not a readable|could not be read as a) PyTorch state dict/);
  });
});
