/**
 * Writes a PyTorch state dict in the format `torch.save` gives it and
 * `torch.load` reads (since PyTorch 1.6): a zip archive, every entry stored
 * uncompressed under one folder, holding `data.pkl` (the pickled
 * OrderedDict of tensors), `data/<n>` (each tensor's storage, little-endian,
 * its data aligned to 64 bytes as torch.save aligns it so that torch.load
 * can map it), `byteorder` and `version`.
 *
 * The bytes depend on the tensors alone (fixed timestamps), so the same
 * weights always make the same file.
 */
import { zipSync, type Zippable } from 'fflate';
import { writeFileAtomic } from '../store/atomic.ts';
import { PickleCall, PickleGlobal, PicklePersistentId, pickle, type PickleValue } from './pickle-write.ts';

export interface StateDictEntry {
  /** The state dict key, e.g. `features.0.0.weight`. */
  key: string;
  /** C-order values: float32 weights and statistics, int64 counters (num_batches_tracked). */
  data: Float32Array | BigInt64Array;
  shape: readonly number[];
}

/** The folder inside the archive; torch.load accepts any name. */
const ARCHIVE = 'archive';
/** torch.save's alignment of every storage's first byte within the file. */
const ALIGNMENT = 64;
/** The extra-field id torch.save pads local headers with ("FB"). */
const PADDING_FIELD = 0x4246;
const LOCAL_HEADER = 30;
/** Serialization format version torch.save writes. */
const FORMAT_VERSION = '3\n';
/** A fixed timestamp (the zip format's epoch), so that the file depends on its tensors only. */
const MTIME = new Date(1980, 0, 1);

const ordered = (items?: Map<string, PickleValue>) => new PickleCall(new PickleGlobal('collections', 'OrderedDict'), [], items);

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let stride = 1;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    out[axis] = stride;
    stride *= shape[axis];
  }
  return out;
}

/** The pickle torch.save writes for an OrderedDict of tensors, storage n holding entry n. */
function statePickle(entries: readonly StateDictEntry[]): Uint8Array {
  const rebuild = new PickleGlobal('torch._utils', '_rebuild_tensor_v2');
  const items = new Map<string, PickleValue>();
  entries.forEach((entry, n) => {
    const storageType = new PickleGlobal('torch', entry.data instanceof BigInt64Array ? 'LongStorage' : 'FloatStorage');
    const storage = new PicklePersistentId(['storage', storageType, String(n), 'cpu', entry.data.length]);
    // (storage, storage offset, size, stride, requires_grad, backward hooks)
    items.set(entry.key, new PickleCall(rebuild, [storage, 0, [...entry.shape], strides(entry.shape), false, ordered()]));
  });
  return pickle(ordered(items));
}

function littleEndianBytes(data: Float32Array | BigInt64Array): Uint8Array {
  // Typed arrays use the platform's byte order; every platform Node supports here is little-endian.
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The state dict as the bytes of a `.pth` file. */
export function encodeStateDict(entries: readonly StateDictEntry[]): Uint8Array {
  const seen = new Set<string>();
  for (const entry of entries) {
    if (seen.has(entry.key)) throw new Error(`state dict key ${entry.key} appears twice`);
    seen.add(entry.key);
    const size = entry.shape.reduce((a, b) => a * b, 1);
    if (size !== entry.data.length) throw new Error(`state dict entry ${entry.key}: shape [${entry.shape.join(', ')}] holds ${size} values, the data ${entry.data.length}`);
  }
  const records: [string, Uint8Array][] = [
    ['data.pkl', statePickle(entries)],
    ['byteorder', new TextEncoder().encode('little')],
    ...entries.map((entry, n): [string, Uint8Array] => [`data/${n}`, littleEndianBytes(entry.data)]),
    ['version', new TextEncoder().encode(FORMAT_VERSION)],
  ];
  // fflate writes the entries in this order, each a local header (30 bytes, the name, the extra
  // field) followed by its data: pad each storage's extra field so that its data starts aligned.
  const files: Zippable = {};
  let offset = 0;
  for (const [record, data] of records) {
    const name = `${ARCHIVE}/${record}`;
    const nameLength = new TextEncoder().encode(name).length;
    let extra: Record<number, Uint8Array> | undefined;
    let extraLength = 0;
    if (record.startsWith('data/')) {
      const unpadded = offset + LOCAL_HEADER + nameLength + 4;
      extra = { [PADDING_FIELD]: new Uint8Array((ALIGNMENT - (unpadded % ALIGNMENT)) % ALIGNMENT) };
      extraLength = 4 + extra[PADDING_FIELD].length;
    }
    files[name] = [data, { level: 0, mtime: MTIME, ...(extra ? { extra } : {}) }];
    offset += LOCAL_HEADER + nameLength + extraLength + data.length;
  }
  return zipSync(files);
}

/** Writes the state dict to `file` atomically (a kill leaves the old file or none, never half a file). */
export async function writeStateDict(file: string, entries: readonly StateDictEntry[]): Promise<void> {
  await writeFileAtomic(file, encodeStateDict(entries));
}
