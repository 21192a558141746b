/**
 * NumPy `.npy` arrays: the on-disk format of every map, input and score
 * array salgrid writes, so that researchers can open them with `np.load`.
 * Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
 */
import { readFile } from 'node:fs/promises';
import { MissingInputError, UserError } from '../errors.ts';
import { writeFileAtomic } from '../store/atomic.ts';

/** int64 arrays (numpy's default integer: class labels) are held as float64 values, exact up to 2^53. */
export type NpyDtype = 'float32' | 'uint8' | 'int32' | 'float64' | 'int64';

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: Float32Array | Uint8Array | Int32Array | Float64Array;
}

interface DtypeInfo {
  descr: string;
  bytes: number;
  create(length: number): NpyArray['data'];
  matches(data: NpyArray['data']): boolean;
}

const DTYPES: Record<NpyDtype, DtypeInfo> = {
  float32: { descr: '<f4', bytes: 4, create: (n) => new Float32Array(n), matches: (d) => d instanceof Float32Array },
  uint8: { descr: '|u1', bytes: 1, create: (n) => new Uint8Array(n), matches: (d) => d instanceof Uint8Array },
  int32: { descr: '<i4', bytes: 4, create: (n) => new Int32Array(n), matches: (d) => d instanceof Int32Array },
  float64: { descr: '<f8', bytes: 8, create: (n) => new Float64Array(n), matches: (d) => d instanceof Float64Array },
  int64: { descr: '<i8', bytes: 8, create: (n) => new Float64Array(n), matches: (d) => d instanceof Float64Array },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** numpy aligns the data to 64 bytes so that it can be memory-mapped for any dtype; we do the same. */
const ALIGNMENT = 64;

/** Maps a header `descr` to a dtype and its byte order; `|` (no order) is how numpy spells one-byte types. */
function parseDescr(descr: string): { dtype: NpyDtype; bigEndian: boolean } | undefined {
  const match = /^([<>|=]?)([fiu])(\d)$/.exec(descr);
  if (!match) return undefined;
  const [, order, kind, size] = match;
  const key = `${kind}${size}`;
  const dtype = ({ f4: 'float32', f8: 'float64', u1: 'uint8', i4: 'int32', i8: 'int64' } as Record<string, NpyDtype>)[key];
  if (!dtype) return undefined;
  return { dtype, bigEndian: order === '>' && size !== '1' };
}

function parseShape(text: string): number[] | undefined {
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part !== '');
  const shape = parts.map((part) => Number(part.replace(/L$/, '')));
  return shape.every((n) => Number.isInteger(n) && n >= 0) ? shape : undefined;
}

function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, n) => product * n, 1);
}

/** Decodes a `.npy` file's bytes; `name` (usually the file path) is what error messages call it. */
export function decodeNpy(bytes: Uint8Array, name = 'the array'): NpyArray {
  if (bytes.length < 10 || MAGIC.some((byte, i) => bytes[i] !== byte)) {
    throw new UserError(`${name} is not a NumPy .npy file (it does not start with the \\x93NUMPY signature); save it with numpy.save or regenerate it.`);
  }
  const major = bytes[6];
  if (major !== 1 && major !== 2 && major !== 3) {
    throw new UserError(`${name} is a .npy file of format version ${major}.${bytes[7]}, which salgrid cannot read; re-save it with numpy.save.`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lengthBytes) throw new UserError(`${name} is truncated: it ends inside the .npy header; regenerate the file.`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = 8 + lengthBytes;
  const dataStart = headerStart + headerLength;
  if (bytes.length < dataStart) throw new UserError(`${name} is truncated: it ends inside the .npy header; regenerate the file.`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));

  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(header)?.[1];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  const shape = shapeText === undefined ? undefined : parseShape(shapeText);
  if (descr === undefined || fortran === undefined || shape === undefined) {
    throw new UserError(`${name} has a corrupt .npy header (${JSON.stringify(header.trim().slice(0, 120))}); regenerate the file.`);
  }
  const type = parseDescr(descr);
  if (!type) {
    throw new UserError(`${name} holds dtype '${descr}', but salgrid reads only float32, float64, uint8, int32 and int64 arrays; convert it with array.astype(numpy.float32).`);
  }
  if (fortran === 'True') {
    throw new UserError(`${name} is stored in Fortran (column-major) order, which salgrid does not read; re-save it with numpy.save(path, numpy.ascontiguousarray(array)).`);
  }

  const info = DTYPES[type.dtype];
  const count = elementCount(shape);
  const byteLength = count * info.bytes;
  const available = bytes.length - dataStart;
  if (available < byteLength) {
    throw new UserError(`${name} is truncated: its header describes ${byteLength} bytes of ${type.dtype} data of shape (${shape.join(', ')}) but only ${available} follow; regenerate the file.`);
  }
  // Copy rather than view: the data offset need not be aligned for the typed array, and callers may keep the array after the file buffer is reused.
  const raw = bytes.slice(dataStart, dataStart + byteLength);
  if (type.bigEndian) swapBytes(raw, info.bytes);
  if (type.dtype === 'int64') {
    const values = new BigInt64Array(raw.buffer, raw.byteOffset, count);
    const data = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      if (values[i] > BigInt(Number.MAX_SAFE_INTEGER) || values[i] < BigInt(Number.MIN_SAFE_INTEGER)) {
        throw new UserError(`${name} holds the int64 value ${values[i]} at index ${i}, beyond what salgrid reads exactly (±2^53); store smaller values.`);
      }
      data[i] = Number(values[i]);
    }
    return { dtype: 'int64', shape, data };
  }
  const data = info.create(count);
  new Uint8Array(data.buffer).set(raw);
  return { dtype: type.dtype, shape, data };
}

function swapBytes(raw: Uint8Array, width: number): void {
  for (let start = 0; start < raw.length; start += width) raw.subarray(start, start + width).reverse();
}

/** Encodes an array as `.npy` v1.0 (v2.0 only when the header outgrows 64 KiB), little-endian, C order, exactly as numpy.save writes it. */
export function encodeNpy(array: NpyArray): Uint8Array {
  const info = DTYPES[array.dtype];
  if (!info) throw new Error(`encodeNpy: unsupported dtype ${String(array.dtype)}`);
  if (!info.matches(array.data)) throw new Error(`encodeNpy: dtype ${array.dtype} does not match a ${array.data.constructor.name}`);
  if (!array.shape.every((n) => Number.isInteger(n) && n >= 0)) throw new Error(`encodeNpy: invalid shape [${array.shape.join(', ')}]`);
  const count = elementCount(array.shape);
  if (count !== array.data.length) throw new Error(`encodeNpy: shape [${array.shape.join(', ')}] holds ${count} values but the data has ${array.data.length}`);

  // Python's tuple spelling: a one-element tuple needs its trailing comma.
  const shape = array.shape.length === 1 ? `(${array.shape[0]},)` : `(${array.shape.join(', ')})`;
  const dict = `{'descr': '${info.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  let major = 1;
  let prefix = 10;
  let headerLength = Math.ceil((prefix + dict.length + 1) / ALIGNMENT) * ALIGNMENT - prefix;
  if (headerLength > 0xffff) {
    major = 2;
    prefix = 12;
    headerLength = Math.ceil((prefix + dict.length + 1) / ALIGNMENT) * ALIGNMENT - prefix;
  }
  const header = dict.padEnd(headerLength - 1, ' ') + '\n';

  const out = new Uint8Array(prefix + headerLength + count * info.bytes);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, headerLength, true);
  else view.setUint32(8, headerLength, true);
  out.set(new TextEncoder().encode(header), prefix);
  // Typed arrays hold the platform's byte order, and every platform Node runs on is little-endian, as the descr says.
  const data = array.dtype === 'int64' ? BigInt64Array.from(array.data as Float64Array, (v) => BigInt(v)) : array.data;
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), prefix + headerLength);
  return out;
}

/** Reads a `.npy` file; a missing or malformed file is a UserError naming it. */
export async function readNpy(file: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingInputError(file, 'Array file', 'check the path, or re-run the task that writes it');
    throw error;
  }
  return decodeNpy(bytes, file);
}

/** Writes a `.npy` file atomically, so a crash never leaves a half-written array behind. */
export async function writeNpy(file: string, array: NpyArray): Promise<void> {
  await writeFileAtomic(file, encodeNpy(array));
}
