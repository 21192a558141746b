/**
 * Reads PyTorch state dicts (`torch.save(model.state_dict())`, `.pth`/`.pt`)
 * without Python, so that torchvision weights and the study's fine-tuned
 * models import as they are. Since torch 1.6 such a file is a zip holding
 * `<prefix>/data.pkl` (a pickle naming tensors by storage key),
 * `<prefix>/data/<key>` (each storage's raw bytes) and, on newer versions,
 * `<prefix>/byteorder`.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { MissingInputError, UserError, errorMessage } from '../errors.ts';
import { PickleError, unpickle, type PickleCallable } from './pickle.ts';
import { ZipArchive, ZipFormatError } from './zip.ts';

export type TorchDtype = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** float16 and bfloat16 keep their raw bits (Node 20 has no Float16Array); `toFloat32` widens any dtype. */
export type TorchData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

export interface TorchTensor {
  dtype: TorchDtype;
  /** PyTorch's (C-order) shape, e.g. [out, in, kh, kw] for a convolution's weight. */
  shape: number[];
  data: TorchData;
}

/** Insertion order is the file's order, which is the module's registration order; `names` spells it out. */
export type StateDict = Map<string, TorchTensor> & { readonly names: readonly string[] };

interface DtypeInfo {
  dtype: TorchDtype;
  bytes: number;
  view(buffer: ArrayBuffer): TorchData;
  create(length: number): TorchData;
}

const STORAGE_TYPES: Record<string, DtypeInfo> = {
  FloatStorage: { dtype: 'float32', bytes: 4, view: (b) => new Float32Array(b), create: (n) => new Float32Array(n) },
  DoubleStorage: { dtype: 'float64', bytes: 8, view: (b) => new Float64Array(b), create: (n) => new Float64Array(n) },
  HalfStorage: { dtype: 'float16', bytes: 2, view: (b) => new Uint16Array(b), create: (n) => new Uint16Array(n) },
  BFloat16Storage: { dtype: 'bfloat16', bytes: 2, view: (b) => new Uint16Array(b), create: (n) => new Uint16Array(n) },
  LongStorage: { dtype: 'int64', bytes: 8, view: (b) => new BigInt64Array(b), create: (n) => new BigInt64Array(n) },
  IntStorage: { dtype: 'int32', bytes: 4, view: (b) => new Int32Array(b), create: (n) => new Int32Array(n) },
  ShortStorage: { dtype: 'int16', bytes: 2, view: (b) => new Int16Array(b), create: (n) => new Int16Array(n) },
  CharStorage: { dtype: 'int8', bytes: 1, view: (b) => new Int8Array(b), create: (n) => new Int8Array(n) },
  ByteStorage: { dtype: 'uint8', bytes: 1, view: (b) => new Uint8Array(b), create: (n) => new Uint8Array(n) },
  BoolStorage: { dtype: 'bool', bytes: 1, view: (b) => new Uint8Array(b), create: (n) => new Uint8Array(n) },
};

class StorageType implements PickleCallable {
  constructor(readonly qualifiedName: string, readonly info: DtypeInfo) {}
  call(): never {
    throw new PickleError(`${this.qualifiedName} is only supported as a persistent storage reference`);
  }
}

class Storage {
  private cached?: TorchData;
  constructor(readonly info: DtypeInfo, private readonly load: () => TorchData) {}
  get data(): TorchData {
    this.cached ??= this.load();
    return this.cached;
  }
}

class Tensor implements TorchTensor {
  constructor(readonly dtype: TorchDtype, readonly shape: number[], readonly data: TorchData) {}
}

function callable(qualifiedName: string, fn: (args: readonly unknown[]) => unknown): PickleCallable {
  return { qualifiedName, call: fn };
}

function intList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((v) => Number.isSafeInteger(v) && v >= 0)) throw new PickleError(`${what} is not a tuple of non-negative integers`);
  return value as number[];
}

/**
 * Materialises a strided view as a C-order array. Contiguous views share the
 * storage's memory (as tensors sharing a storage do in torch); others are copied.
 */
function rebuildTensor(storage: unknown, offsetArg: unknown, sizeArg: unknown, strideArg: unknown): Tensor {
  if (!(storage instanceof Storage)) throw new PickleError('a tensor is rebuilt from something that is not a storage');
  if (!Number.isSafeInteger(offsetArg) || (offsetArg as number) < 0) throw new PickleError('a tensor has an invalid storage offset');
  const offset = offsetArg as number;
  const shape = intList(sizeArg, 'a tensor size');
  const stride = intList(strideArg, 'a tensor stride');
  if (stride.length !== shape.length) throw new PickleError('a tensor has as many strides as dimensions');
  const numel = shape.reduce((a, b) => a * b, 1);
  const source = storage.data;
  if (numel === 0) return new Tensor(storage.info.dtype, [...shape], storage.info.create(0));
  const last = shape.reduce((sum, size, d) => sum + (size - 1) * stride[d], offset);
  if (last >= source.length) throw new PickleError(`a tensor of shape [${shape}] reaches element ${last} of a storage of ${source.length}`);
  let contiguous = true;
  for (let d = shape.length - 1, expected = 1; d >= 0; d--) {
    // Strides of size-1 dimensions are arbitrary in torch and never affect addressing.
    if (shape[d] !== 1 && stride[d] !== expected) contiguous = false;
    expected *= shape[d];
  }
  if (contiguous) return new Tensor(storage.info.dtype, [...shape], source.subarray(offset, offset + numel));
  const out = storage.info.create(numel);
  const index = new Array<number>(shape.length).fill(0);
  let at = offset;
  for (let i = 0; i < numel; i++) {
    (out as Float64Array)[i] = (source as Float64Array)[at];
    // Odometer over the dimensions, last one fastest, tracking the source position incrementally.
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) { at += stride[d]; break; }
      at -= (shape[d] - 1) * stride[d];
      index[d] = 0;
    }
  }
  return new Tensor(storage.info.dtype, [...shape], out);
}

function asTensor(value: unknown, what: string): Tensor {
  if (!(value instanceof Tensor)) throw new PickleError(`${what} is not a tensor`);
  return value;
}

function globals(): Map<string, PickleCallable> {
  const table = new Map<string, PickleCallable>();
  const add = (c: PickleCallable): void => void table.set(c.qualifiedName, c);
  add(callable('collections.OrderedDict', (args) => {
    const map = new Map<unknown, unknown>();
    if (args.length > 0 && Array.isArray(args[0])) for (const pair of args[0]) if (Array.isArray(pair) && pair.length === 2) map.set(pair[0], pair[1]);
    return map;
  }));
  add(callable('torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(args[0], args[1], args[2], args[3])));
  add(callable('torch._utils._rebuild_tensor', (args) => rebuildTensor(args[0], args[1], args[2], args[3])));
  // A Parameter is its data; requires_grad and hooks mean nothing to an importer.
  add(callable('torch._utils._rebuild_parameter', (args) => asTensor(args[0], 'a parameter\'s data')));
  add(callable('torch._utils._rebuild_parameter_with_state', (args) => asTensor(args[0], 'a parameter\'s data')));
  for (const [name, info] of Object.entries(STORAGE_TYPES)) add(new StorageType(`torch.${name}`, info));
  return table;
}

/** Copies a storage out of the archive into aligned memory, swapping bytes for big-endian files. */
function decodeStorage(bytes: Uint8Array, info: DtypeInfo, bigEndian: boolean): TorchData {
  if (bytes.length % info.bytes !== 0) throw new PickleError(`a ${info.dtype} storage has ${bytes.length} bytes, not a multiple of ${info.bytes}`);
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  if (bigEndian && info.bytes > 1) {
    for (let i = 0; i < copy.length; i += info.bytes) copy.subarray(i, i + info.bytes).reverse();
  }
  return info.view(copy.buffer);
}

function findPrefix(file: string, archive: ZipArchive): string {
  const names = archive.names();
  const pickle = names.find((name) => /^[^/]+\/data\.pkl$/.test(name));
  if (!pickle) throw new UserError(`${file} is a zip archive but not a PyTorch file: it has no <name>/data.pkl.`);
  const prefix = pickle.slice(0, -'data.pkl'.length);
  if (names.some((name) => name.startsWith(`${prefix}code/`) || name === `${prefix}constants.pkl`)) {
    throw new UserError(`${file} is a TorchScript archive (torch.jit.save); save the weights with torch.save(model.state_dict(), path) instead.`);
  }
  return prefix;
}

function isTensorMap(value: unknown): value is Map<string, Tensor> {
  if (!(value instanceof Map)) return false;
  for (const [key, tensor] of value) if (typeof key !== 'string' || !(tensor instanceof Tensor)) return false;
  return true;
}

/** A bare state dict, or a training checkpoint that holds one under a conventional key. */
function selectStateDict(file: string, root: unknown): Map<string, Tensor> {
  if (isTensorMap(root)) return root;
  if (root instanceof Map) {
    for (const key of ['state_dict', 'model_state_dict', 'model']) if (isTensorMap(root.get(key))) return root.get(key) as Map<string, Tensor>;
    const bad = [...root].find(([, v]) => !(v instanceof Tensor));
    throw new UserError(`${file} is not a state dict: entry ${JSON.stringify(String(bad?.[0]))} is not a tensor (a whole pickled model cannot be read; save model.state_dict() instead).`);
  }
  throw new UserError(`${file} is not a state dict (its pickle holds no dict of tensors); save model.state_dict() instead.`);
}

/** Parses a state dict already in memory; `file` names it in errors. */
export function parseStateDict(buffer: Buffer, file: string): StateDict {
  let archive: ZipArchive;
  try {
    archive = new ZipArchive(buffer);
  } catch (error) {
    if (!(error instanceof ZipFormatError)) throw error;
    // Pre-1.6 torch.save wrote a bare pickle stream (protocol 2 starts 0x80 0x02); older still, a tar.
    if ((buffer.length >= 2 && buffer[0] === 0x80 && buffer[1] === 0x02) || buffer.toString('latin1', 257, 262) === 'ustar') {
      throw new UserError(`${file} uses PyTorch's legacy (pre-1.6) format; re-save it with a current torch: torch.save(torch.load(path), path).`);
    }
    throw new UserError(`${file} is not a readable PyTorch state dict (${error.message}).`);
  }
  const prefix = findPrefix(file, archive);
  try {
    const byteorder = archive.entries.has(`${prefix}byteorder`) ? archive.read(`${prefix}byteorder`).toString('latin1').trim() : 'little';
    if (byteorder !== 'little' && byteorder !== 'big') throw new PickleError(`unknown byte order "${byteorder}"`);
    const table = globals();
    const storages = new Map<string, Storage>();
    const root = unpickle(archive.read(`${prefix}data.pkl`), {
      findClass: (module, name) => table.get(`${module}.${name}`),
      persistentLoad: (pid) => {
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 4) throw new PickleError(`unsupported persistent id ${JSON.stringify(pid)}`);
        const [, type, key] = pid;
        if (!(type instanceof StorageType)) throw new PickleError('a storage reference names no storage type');
        if (typeof key !== 'string') throw new PickleError('a storage key is not a string');
        let storage = storages.get(key);
        if (!storage) {
          const entry = `${prefix}data/${key}`;
          storage = new Storage(type.info, () => decodeStorage(archive.read(entry), type.info, byteorder === 'big'));
          storages.set(key, storage);
        }
        // Tied weights share one storage key; a second dtype for it would reinterpret the bytes.
        if (storage.info !== type.info) throw new PickleError(`storage ${key} is referenced as both ${storage.info.dtype} and ${type.info.dtype}`);
        return storage;
      },
    });
    const tensors = selectStateDict(file, root);
    return Object.assign(new Map<string, TorchTensor>(tensors), { names: Object.freeze([...tensors.keys()]) });
  } catch (error) {
    if (error instanceof PickleError || error instanceof ZipFormatError) {
      throw new UserError(`${file} could not be read as a PyTorch state dict: ${error.message}.`);
    }
    throw error;
  }
}

export async function readStateDict(file: string): Promise<StateDict> {
  let buffer: Buffer;
  try {
    buffer = await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingInputError(file, 'PyTorch state dict', 'check the path');
    throw new UserError(`${file} could not be read: ${errorMessage(error)}.`);
  }
  return parseStateDict(buffer, file);
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Widens any dtype to float32, the precision salgrid's models compute in. */
export function toFloat32(tensor: TorchTensor): Float32Array {
  const { data, dtype } = tensor;
  if (dtype === 'float32') return data as Float32Array;
  const out = new Float32Array(data.length);
  if (dtype === 'float16') {
    for (let i = 0; i < data.length; i++) out[i] = halfToFloat((data as Uint16Array)[i]);
  } else if (dtype === 'bfloat16') {
    // bfloat16 is the top half of a float32.
    const wide = new Uint32Array(out.buffer);
    for (let i = 0; i < data.length; i++) wide[i] = (data as Uint16Array)[i] << 16;
  } else if (dtype === 'int64') {
    for (let i = 0; i < data.length; i++) out[i] = Number((data as BigInt64Array)[i]);
  } else {
    out.set(data as Float64Array);
  }
  return out;
}

/** A PyTorch state dict by its name: .pth, .pt, .ckpt, or a .bin that is not a tfjs model's weights.bin. */
export function isStateDictFile(file: string): boolean {
  return /\.(pth|pt|ckpt)$/i.test(file) || (/\.bin$/i.test(file) && path.basename(file) !== 'weights.bin');
}
