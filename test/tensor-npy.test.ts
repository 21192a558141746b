import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isUserError } from '../src/core/errors.ts';
import { decodeNpy, encodeNpy, readNpy, writeNpy, type NpyArray } from '../src/core/io/npy.ts';
import { ROOT, tempDir } from './helpers.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden');

/** Runs a Python snippet with numpy and returns its stdout; numpy is on every machine salgrid is tested on. */
function python(code: string): string {
  const result = spawnSync('python3', ['-c', code], { encoding: 'utf8' });
  assert.equal(result.status, 0, `python3 with numpy failed: ${result.error?.message ?? result.stderr}`);
  return result.stdout;
}

async function rejectsWithUserError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: Error) => {
    assert.ok(isUserError(error), `expected a UserError, got ${error.stack}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe('npy: reading numpy-written files', () => {
  it('reads the golden uint8 layer maps with their levels', async () => {
    const slm = await readNpy(path.join(GOLDEN, 'layer-metrics', 'slm.npy'));
    assert.equal(slm.dtype, 'uint8');
    assert.deepEqual(slm.shape, [6, 56, 56]);
    assert.ok(slm.data instanceof Uint8Array);
    const counts = new Map<number, number>();
    for (const value of slm.data) counts.set(value, (counts.get(value) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries([...counts].sort((a, b) => a[0] - b[0])), { 0: 9240, 32: 2296, 64: 2296, 128: 2408, 255: 2576 });
    // Column 28 of the first map, top to bottom: gel, then the graded bands.
    const column = Array.from({ length: 56 }, (_, row) => slm.data[row * 56 + 28]);
    assert.deepEqual(column.slice(0, 16), [0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 128]);
  });

  it('reads the golden float32 heatmap and network inputs bit for bit', async () => {
    const heatmap = await readNpy(path.join(GOLDEN, 'layer-metrics', 'heatmap.npy'));
    assert.equal(heatmap.dtype, 'float32');
    assert.deepEqual(heatmap.shape, [6, 56, 56]);
    assert.deepEqual(Array.from(heatmap.data.subarray(0, 3)), [0.0003850924549624324, 0.0006032044184394181, 0.0009303949191235006]);
    assert.equal(heatmap.data[heatmap.data.length - 1], 0.2867833971977234);
    let argmax = 0;
    for (let i = 1; i < heatmap.data.length; i++) if (heatmap.data[i] > heatmap.data[argmax]) argmax = i;
    assert.equal(argmax, 4 * 56 * 56 + 11 * 56 + 33);
    assert.equal(heatmap.data[argmax], 1.4687477350234985);

    const inputs = await readNpy(path.join(GOLDEN, 'tiny-cnn', 'inputs.npy'));
    assert.equal(inputs.dtype, 'float32');
    assert.deepEqual(inputs.shape, [4, 64, 64, 3]);
    assert.deepEqual(Array.from(inputs.data.subarray(0, 3)), [-0.11896836757659912, 0.036085691303014755, -0.2844489514827728]);
    assert.equal(inputs.data[inputs.data.length - 1], 0.11955630779266357);
  });

  it('reads what numpy writes in every supported dtype, byte order and header version', async () => {
    const dir = tempDir();
    python(`
import numpy as np
from numpy.lib import format as fmt
d = ${JSON.stringify(dir)}
base = np.arange(24).reshape(2, 3, 4)
np.save(d + '/f4.npy', (base / 8 - 1).astype('<f4'))
np.save(d + '/f8.npy', (base / 3).astype('<f8'))
np.save(d + '/i4.npy', (base * -1000).astype('<i4'))
np.save(d + '/u1.npy', (base * 10).astype(np.uint8))
np.save(d + '/be.npy', (base / 8).astype('>f4'))
np.save(d + '/scalar.npy', np.float32(2.5))
np.save(d + '/vector.npy', np.array([7], dtype=np.int32))
np.save(d + '/empty.npy', np.zeros((0, 5), dtype=np.float32))
with open(d + '/v2.npy', 'wb') as f: fmt.write_array(f, (base / 8).astype('<f4'), version=(2, 0))
with open(d + '/v3.npy', 'wb') as f: fmt.write_array(f, (base / 8).astype('<f4'), version=(3, 0))
`);
    const values = Array.from({ length: 24 }, (_, i) => i);
    const read = (name: string) => readNpy(path.join(dir, name));
    const f4 = await read('f4.npy');
    assert.equal(f4.dtype, 'float32');
    assert.deepEqual(f4.shape, [2, 3, 4]);
    assert.deepEqual(Array.from(f4.data), values.map((i) => i / 8 - 1));
    const f8 = await read('f8.npy');
    assert.equal(f8.dtype, 'float64');
    assert.ok(f8.data instanceof Float64Array);
    assert.deepEqual(Array.from(f8.data), values.map((i) => i / 3));
    const i4 = await read('i4.npy');
    assert.equal(i4.dtype, 'int32');
    assert.deepEqual(Array.from(i4.data), values.map((i) => i * -1000 || 0));
    const u1 = await read('u1.npy');
    assert.equal(u1.dtype, 'uint8');
    assert.deepEqual(Array.from(u1.data), values.map((i) => i * 10));
    for (const name of ['be.npy', 'v2.npy', 'v3.npy']) {
      const array = await read(name);
      assert.deepEqual([array.dtype, array.shape], ['float32', [2, 3, 4]], name);
      assert.deepEqual(Array.from(array.data), values.map((i) => i / 8), name);
    }
    assert.deepEqual(await read('scalar.npy'), { dtype: 'float32', shape: [], data: new Float32Array([2.5]) });
    assert.deepEqual(await read('vector.npy'), { dtype: 'int32', shape: [1], data: new Int32Array([7]) });
    assert.deepEqual(await read('empty.npy'), { dtype: 'float32', shape: [0, 5], data: new Float32Array(0) });
  });
});

describe('npy: writing files numpy reads', () => {
  it('writes float32, uint8 and int32 arrays that numpy loads with the right dtype, shape and values', async () => {
    const dir = tempDir();
    const arrays: Record<string, NpyArray> = {
      f4: { dtype: 'float32', shape: [2, 3, 4], data: Float32Array.from({ length: 24 }, (_, i) => Math.fround(i * 0.1 - 1)) },
      u1: { dtype: 'uint8', shape: [3, 5], data: Uint8Array.from({ length: 15 }, (_, i) => (i * 37) % 256) },
      i4: { dtype: 'int32', shape: [7], data: Int32Array.from([0, -1, 2147483647, -2147483648, 5, 6, 7]) },
      scalar: { dtype: 'float32', shape: [], data: new Float32Array([3.25]) },
      f8: { dtype: 'float64', shape: [2, 1], data: new Float64Array([Math.PI, -Math.E]) },
    };
    for (const [name, array] of Object.entries(arrays)) await writeNpy(path.join(dir, `${name}.npy`), array);
    // No temporary files left behind by the atomic write.
    assert.deepEqual(readdirSync(dir).sort(), ['f4.npy', 'f8.npy', 'i4.npy', 'scalar.npy', 'u1.npy']);

    const loaded = JSON.parse(python(`
import json, numpy as np
d = ${JSON.stringify(dir)}
out = {}
for name in ['f4', 'u1', 'i4', 'scalar', 'f8']:
    a = np.load(d + '/' + name + '.npy')
    assert a.flags['C_CONTIGUOUS']
    out[name] = {'dtype': a.dtype.str, 'shape': list(a.shape), 'values': a.ravel().tolist()}
print(json.dumps(out))
`));
    assert.deepEqual(loaded.f4, { dtype: '<f4', shape: [2, 3, 4], values: Array.from(arrays.f4.data) });
    assert.deepEqual(loaded.u1, { dtype: '|u1', shape: [3, 5], values: Array.from(arrays.u1.data) });
    assert.deepEqual(loaded.i4, { dtype: '<i4', shape: [7], values: Array.from(arrays.i4.data) });
    assert.deepEqual(loaded.scalar, { dtype: '<f4', shape: [], values: [3.25] });
    assert.deepEqual(loaded.f8, { dtype: '<f8', shape: [2, 1], values: [Math.PI, -Math.E] });
  });

  it('lays the header out as numpy does: data at a multiple of 64 bytes, header ending in a newline', () => {
    const bytes = encodeNpy({ dtype: 'uint8', shape: [6, 56, 56], data: new Uint8Array(6 * 56 * 56) });
    const golden = readFileSync(path.join(GOLDEN, 'layer-metrics', 'slm.npy'));
    // Same dtype and shape as the numpy-written golden file: same header, byte for byte.
    assert.deepEqual(bytes.subarray(0, 128), new Uint8Array(golden.subarray(0, 128)));
    for (const shape of [[], [1], [3, 4], [0, 100000, 3, 2, 7, 9], [17, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]]) {
      const count = shape.reduce((a, b) => a * b, 1);
      const encoded = encodeNpy({ dtype: 'float32', shape, data: new Float32Array(count) });
      const headerLength = encoded[8] | (encoded[9] << 8);
      assert.equal((10 + headerLength) % 64, 0);
      assert.equal(encoded[10 + headerLength - 1], 0x0a);
      assert.equal(encoded.length, 10 + headerLength + count * 4);
    }
  });

  it('round-trips every dtype, including typed arrays that are views into a larger buffer', () => {
    const backing = new Float32Array(10).map((_, i) => i + 0.5);
    const cases: NpyArray[] = [
      { dtype: 'float32', shape: [2, 3], data: backing.subarray(3, 9) },
      { dtype: 'uint8', shape: [4], data: new Uint8Array([0, 1, 254, 255]) },
      { dtype: 'int32', shape: [2, 2], data: new Int32Array([-5, 0, 5, 1 << 30]) },
      { dtype: 'float64', shape: [3], data: new Float64Array([1e-300, -0, Infinity]) },
      { dtype: 'float32', shape: [2], data: new Float32Array([NaN, -Infinity]) },
    ];
    for (const array of cases) {
      const decoded = decodeNpy(encodeNpy(array));
      assert.equal(decoded.dtype, array.dtype);
      assert.deepEqual(decoded.shape, array.shape);
      assert.deepEqual(Array.from(decoded.data), Array.from(array.data));
      assert.equal(decoded.data.constructor, array.data.constructor);
    }
  });

  it('refuses data that does not fit its shape or dtype (a programming error, not a user one)', () => {
    assert.throws(() => encodeNpy({ dtype: 'float32', shape: [2, 2], data: new Float32Array(3) }), /holds 4 values/);
    assert.throws(() => encodeNpy({ dtype: 'uint8', shape: [2], data: new Float32Array(2) }), /does not match/);
  });
});

describe('npy: clear errors for bad files', () => {
  it('names the file and says it is truncated', async () => {
    const dir = tempDir();
    const whole = readFileSync(path.join(GOLDEN, 'layer-metrics', 'heatmap.npy'));
    const file = path.join(dir, 'cut.npy');
    writeFileSync(file, whole.subarray(0, 1000));
    await rejectsWithUserError(readNpy(file), new RegExp(`^${escape(file)} is truncated: .*75264 bytes of float32 data of shape \\(6, 56, 56\\) but only 872 follow`));
    writeFileSync(file, whole.subarray(0, 40));
    await rejectsWithUserError(readNpy(file), new RegExp(`^${escape(file)} is truncated: it ends inside the .npy header`));
  });

  it('names the file that is not an .npy at all, or is empty', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'notes.npy');
    writeFileSync(file, 'these are my notes, not an array\n');
    await rejectsWithUserError(readNpy(file), new RegExp(`^${escape(file)} is not a NumPy .npy file`));
    writeFileSync(file, '');
    await rejectsWithUserError(readNpy(file), new RegExp(`^${escape(file)} is not a NumPy .npy file`));
  });

  it('rejects Fortran order, unsupported dtypes, corrupt headers and missing files with the file named', async () => {
    const dir = tempDir();
    python(`
import numpy as np
d = ${JSON.stringify(dir)}
np.save(d + '/fortran.npy', np.asfortranarray(np.ones((3, 4), dtype=np.float32)))
np.save(d + '/complex.npy', np.ones(3, dtype=np.complex64))
`);
    await rejectsWithUserError(readNpy(path.join(dir, 'fortran.npy')), /fortran\.npy is stored in Fortran \(column-major\) order.*ascontiguousarray/);
    await rejectsWithUserError(readNpy(path.join(dir, 'complex.npy')), /complex\.npy holds dtype '<c8'/);
    const corrupt = encodeNpy({ dtype: 'float32', shape: [2], data: new Float32Array(2) });
    corrupt.set(new TextEncoder().encode("{'desk'"), 10);
    await rejectsWithUserError(Promise.resolve().then(() => decodeNpy(corrupt, 'maps/a.npy')), /^maps\/a\.npy has a corrupt \.npy header/);
    await rejectsWithUserError(readNpy(path.join(dir, 'absent.npy')), /absent\.npy/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
