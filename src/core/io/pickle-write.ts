/**
 * Writes Python pickles (protocol 2) of the values a PyTorch state dict is
 * made of: None, booleans, integers, strings, tuples, dicts, globals, calls
 * of globals (REDUCE) and persistent ids (BINPERSID). What a value means is
 * the caller's business; this file only knows the opcodes, which are those
 * of CPython's Lib/pickletools.py.
 */

/** `module.name`, as pickle's GLOBAL opcode names it. */
export class PickleGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
}

/** `callable(*args)`: a global called with a tuple of arguments (REDUCE), then given `items` as a dict is (SETITEMS: how an OrderedDict is pickled). */
export class PickleCall {
  constructor(
    readonly callable: PickleGlobal,
    readonly args: readonly PickleValue[],
    readonly items?: Map<string, PickleValue>,
  ) {}
}

/** A persistent id: the unpickler's persistent_load resolves the tuple (torch: a storage record). */
export class PicklePersistentId {
  constructor(readonly id: readonly PickleValue[]) {}
}

/** A Python tuple (arrays are tuples here: state dicts hold no lists). */
export type PickleTupleValue = readonly PickleValue[];

export type PickleValue =
  | null
  | boolean
  | number
  | string
  | PickleTupleValue
  | Map<string, PickleValue>
  | PickleGlobal
  | PickleCall
  | PicklePersistentId;

const OP = {
  PROTO: 0x80,
  STOP: 0x2e,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  BININT: 0x4a,
  LONG1: 0x8a,
  BINUNICODE: 0x58,
  EMPTY_TUPLE: 0x29,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  TUPLE: 0x74,
  MARK: 0x28,
  EMPTY_DICT: 0x7d,
  SETITEMS: 0x75,
  GLOBAL: 0x63,
  REDUCE: 0x52,
  BINPERSID: 0x51,
} as const;

class ByteSink {
  private chunks: Uint8Array[] = [];
  private length = 0;

  byte(value: number): void {
    this.bytes(Uint8Array.of(value));
  }

  bytes(data: Uint8Array): void {
    this.chunks.push(data);
    this.length += data.length;
  }

  int32(value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setInt32(0, value, true);
    this.bytes(data);
  }

  uint32(value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value, true);
    this.bytes(data);
  }

  result(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const chunk of this.chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}

const encoder = new TextEncoder();

/** Two's-complement little-endian bytes of `value`, as few as hold it (LONG1's payload). */
function longBytes(value: bigint): Uint8Array {
  const bytes: number[] = [];
  let rest = value;
  for (;;) {
    const byte = Number(rest & 0xffn);
    bytes.push(byte);
    rest >>= 8n;
    // Done once the remaining bits are all sign and the last byte's top bit agrees with the sign.
    if ((rest === 0n && (byte & 0x80) === 0) || (rest === -1n && (byte & 0x80) !== 0)) break;
  }
  return Uint8Array.from(bytes);
}

/** Adds `items` to the dict on top of the stack. */
function setItems(sink: ByteSink, items: Map<string, PickleValue> | undefined): void {
  if (!items || items.size === 0) return;
  sink.byte(OP.MARK);
  for (const [key, item] of items) {
    write(sink, key);
    write(sink, item);
  }
  sink.byte(OP.SETITEMS);
}

function write(sink: ByteSink, value: PickleValue): void {
  if (value === null) return sink.byte(OP.NONE);
  if (typeof value === 'boolean') return sink.byte(value ? OP.NEWTRUE : OP.NEWFALSE);
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) throw new Error(`pickle-write: ${value} is not an integer (floats are not needed in a state dict's pickle)`);
    if (value >= -(2 ** 31) && value < 2 ** 31) {
      sink.byte(OP.BININT);
      return sink.int32(value);
    }
    const bytes = longBytes(BigInt(value));
    sink.byte(OP.LONG1);
    sink.byte(bytes.length);
    return sink.bytes(bytes);
  }
  if (typeof value === 'string') {
    const bytes = encoder.encode(value);
    sink.byte(OP.BINUNICODE);
    sink.uint32(bytes.length);
    return sink.bytes(bytes);
  }
  if (value instanceof PickleGlobal) {
    if (/[\n]/.test(value.module + value.name)) throw new Error('pickle-write: a global name cannot contain a newline');
    sink.byte(OP.GLOBAL);
    return sink.bytes(encoder.encode(`${value.module}\n${value.name}\n`));
  }
  if (value instanceof PickleCall) {
    write(sink, value.callable);
    write(sink, value.args);
    sink.byte(OP.REDUCE);
    return setItems(sink, value.items);
  }
  if (value instanceof PicklePersistentId) {
    write(sink, value.id);
    return sink.byte(OP.BINPERSID);
  }
  if (value instanceof Map) {
    sink.byte(OP.EMPTY_DICT);
    return setItems(sink, value);
  }
  // A tuple.
  const items = value as PickleTupleValue;
  if (items.length === 0) return sink.byte(OP.EMPTY_TUPLE);
  if (items.length > 3) sink.byte(OP.MARK);
  for (const item of items) write(sink, item);
  sink.byte(items.length === 1 ? OP.TUPLE1 : items.length === 2 ? OP.TUPLE2 : items.length === 3 ? OP.TUPLE3 : OP.TUPLE);
}

/** The pickle (protocol 2) of `value`, ending in STOP. */
export function pickle(value: PickleValue): Uint8Array {
  const sink = new ByteSink();
  sink.byte(OP.PROTO);
  sink.byte(2);
  write(sink, value);
  sink.byte(OP.STOP);
  return sink.result();
}
