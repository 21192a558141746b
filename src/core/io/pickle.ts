/**
 * A Python pickle interpreter for data, never code: every global a pickle
 * names must be granted by the caller's `findClass`, so a hostile file can
 * only fail, not run anything. Covers protocols 0–4 as far as the opcodes
 * torch.save and ordinary containers use.
 * Opcode reference: CPython's Lib/pickletools.py.
 */

/** Python tuples become frozen arrays so that accidental mutation (APPEND on a tuple) fails loudly. */
export type PickleTuple = readonly unknown[];

/** Something a pickle may call (REDUCE, NEWOBJ) — the only way a global comes to life. */
export interface PickleCallable {
  readonly qualifiedName: string;
  call(args: readonly unknown[]): unknown;
}

export interface PickleHooks {
  /** Resolves `module.name`; throw (or return undefined) for anything not allowed. */
  findClass(module: string, name: string): PickleCallable | undefined;
  persistentLoad?(pid: unknown): unknown;
  /** BUILD on an object the hooks created; return false to report it unsupported. Maps ignore BUILD (see below). */
  build?(target: unknown, state: unknown): boolean;
}

export class PickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PickleError';
  }
}

const MARK = Symbol('mark');

const textDecoder = new TextDecoder('utf-8', { fatal: true });

function isCallable(value: unknown): value is PickleCallable {
  return typeof value === 'object' && value !== null && typeof (value as PickleCallable).call === 'function' && typeof (value as PickleCallable).qualifiedName === 'string';
}

/** Two's-complement little-endian integer (LONG1/LONG4); a plain number when it fits exactly. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

export function unpickle(data: Uint8Array, hooks: PickleHooks): unknown {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let pos = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number): void => {
    if (pos + n > data.length) throw new PickleError(`pickle ends unexpectedly at byte ${pos}`);
  };
  const u8 = (): number => { need(1); return data[pos++]; };
  const u16 = (): number => { need(2); const v = view.getUint16(pos, true); pos += 2; return v; };
  const i32 = (): number => { need(4); const v = view.getInt32(pos, true); pos += 4; return v; };
  const u32 = (): number => { need(4); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PickleError('a length in the pickle is out of range');
    return Number(v);
  };
  const bytes = (n: number): Uint8Array => { need(n); const b = data.subarray(pos, pos + n); pos += n; return b; };
  const utf8 = (n: number): string => textDecoder.decode(bytes(n));
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new PickleError('unterminated text line in pickle');
    const text = Buffer.from(data.subarray(pos, end)).toString('latin1');
    pos = end + 1;
    return text;
  };
  const pop = (): unknown => {
    if (stack.length === 0) throw new PickleError('pickle stack underflow');
    const value = stack.pop();
    if (value === MARK) throw new PickleError('pickle popped a MARK as a value');
    return value;
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new PickleError('pickle stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const previous = metastack.pop();
    if (!previous) throw new PickleError('pickle has no MARK to pop to');
    stack = previous;
    return items;
  };
  const resolve = (module: string, name: string): PickleCallable => {
    const found = hooks.findClass(module, name);
    if (!found) throw new PickleError(`unsupported global ${module}.${name}`);
    return found;
  };
  const call = (callable: unknown, args: unknown): unknown => {
    if (!isCallable(callable)) throw new PickleError('pickle calls something that is not a granted global');
    if (!Array.isArray(args)) throw new PickleError(`arguments to ${callable.qualifiedName} are not a tuple`);
    return callable.call(args);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) throw new PickleError('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) throw new PickleError('SETITEMS with an odd number of values');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const append = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target) || Object.isFrozen(target)) throw new PickleError('APPEND(S) on something that is not a list');
    target.push(...items);
  };
  const getMemo = (index: number): unknown => {
    if (!memo.has(index)) throw new PickleError(`memo entry ${index} is missing`);
    return memo.get(index);
  };

  for (;;) {
    const opcodeAt = pos;
    const opcode = u8();
    switch (opcode) {
      case 0x80: u8(); break; // PROTO: the version changes nothing for a reader
      case 0x95: u64(); break; // FRAME: a framing hint, data follows inline
      case 0x2e: return pop(); // STOP
      case 0x28: metastack.push(stack); stack = []; break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(decodeLong(bytes(u8()))); break; // LONG1
      case 0x8b: { const n = i32(); if (n < 0) throw new PickleError('negative LONG4 length'); stack.push(decodeLong(bytes(n))); break; }
      case 0x47: { need(8); stack.push(view.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT is big-endian
      case 0x58: stack.push(utf8(u32())); break; // BINUNICODE
      case 0x8c: stack.push(utf8(u8())); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(utf8(u64())); break; // BINUNICODE8
      // Python 2 str: torch never writes these for names, but latin1 is what Python 3's default encoding='ASCII' tolerates plus more.
      case 0x55: stack.push(Buffer.from(bytes(u8())).toString('latin1')); break; // SHORT_BINSTRING
      case 0x54: stack.push(Buffer.from(bytes(i32())).toString('latin1')); break; // BINSTRING
      case 0x43: stack.push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x42: stack.push(bytes(u32()).slice()); break; // BINBYTES
      case 0x8e: stack.push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x74: { const items = popMark(); stack.push(Object.freeze(items)); break; } // TUPLE (stack is reassigned by popMark, so read it after)
      case 0x85: { const a = pop(); stack.push(Object.freeze([a])); break; } // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push(Object.freeze([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push(Object.freeze([a, b, c])); break; } // TUPLE3
      case 0x6c: { const items = popMark(); stack.push(items); break; } // LIST
      case 0x61: { const value = pop(); append(top(), [value]); break; } // APPEND
      case 0x65: { const items = popMark(); append(top(), items); break; } // APPENDS
      case 0x64: { const items = popMark(); const map = new Map(); setItems(map, items); stack.push(map); break; } // DICT
      case 0x73: { const value = pop(); const key = pop(); setItems(top(), [key, value]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(getMemo(u8())); break; // BINGET
      case 0x6a: stack.push(getMemo(u32())); break; // LONG_BINGET
      case 0x63: { const module = line(); const name = line(); stack.push(resolve(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL with non-string names');
        stack.push(resolve(module, name));
        break;
      }
      case 0x52: { const args = pop(); const callable = pop(); stack.push(call(callable, args)); break; } // REDUCE
      case 0x81: { const args = pop(); const cls = pop(); stack.push(call(cls, args)); break; } // NEWOBJ
      case 0x92: { // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (kwargs instanceof Map && kwargs.size > 0) throw new PickleError('NEWOBJ_EX with keyword arguments is unsupported');
        stack.push(call(cls, args));
        break;
      }
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        // OrderedDict state dicts carry a `_metadata` attribute (module versions) that weights do not need.
        if (target instanceof Map) break;
        if (!hooks.build?.(target, state)) throw new PickleError('BUILD (object state) on an unsupported object');
        break;
      }
      case 0x51: { // BINPERSID
        const pid = pop();
        if (!hooks.persistentLoad) throw new PickleError('persistent ids are not supported here');
        stack.push(hooks.persistentLoad(pid));
        break;
      }
      default:
        throw new PickleError(`unsupported pickle opcode 0x${opcode.toString(16).padStart(2, '0')} at byte ${opcodeAt}`);
    }
  }
}
