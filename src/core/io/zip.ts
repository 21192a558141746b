/**
 * A minimal zip reader for archives held in memory: enough for the files
 * `torch.save` writes (STORED entries, zip64 once an archive passes 4 GiB)
 * and for DEFLATE entries a user may produce by re-zipping one.
 * Format: https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT
 */
import { inflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

/** Raised for anything that is not a readable zip; callers wrap it with the file's name. */
export class ZipFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZipFormatError';
  }
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
/** The end record may be followed by a comment of up to 65535 bytes, so it is searched for backwards over that span. */
const MAX_COMMENT = 0xffff;

function readU64(buffer: Buffer, offset: number): number {
  const value = buffer.readBigUInt64LE(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new ZipFormatError('a zip64 size or offset is out of range');
  return Number(value);
}

function findEndRecord(buffer: Buffer): number {
  const stop = Math.max(0, buffer.length - EOCD_SIZE - MAX_COMMENT);
  for (let offset = buffer.length - EOCD_SIZE; offset >= stop; offset--) {
    if (buffer.readUInt32LE(offset) === EOCD_SIGNATURE) return offset;
  }
  throw new ZipFormatError('no end-of-central-directory record (not a zip archive, or truncated)');
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();

  constructor(private readonly buffer: Buffer) {
    if (buffer.length < EOCD_SIZE) throw new ZipFormatError('too short to be a zip archive');
    const end = findEndRecord(buffer);
    let count = buffer.readUInt16LE(end + 10);
    let directorySize = buffer.readUInt32LE(end + 12);
    let directoryOffset = buffer.readUInt32LE(end + 16);
    // Saturated 16/32-bit fields mean the real values live in the zip64 end record.
    if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
      const locator = end - 20;
      if (locator < 0 || buffer.readUInt32LE(locator) !== ZIP64_LOCATOR_SIGNATURE) throw new ZipFormatError('zip64 locator missing');
      const record = readU64(buffer, locator + 8);
      if (record + 56 > buffer.length || buffer.readUInt32LE(record) !== ZIP64_EOCD_SIGNATURE) throw new ZipFormatError('zip64 end record missing');
      count = readU64(buffer, record + 32);
      directorySize = readU64(buffer, record + 40);
      directoryOffset = readU64(buffer, record + 48);
    }
    if (directoryOffset + directorySize > buffer.length) throw new ZipFormatError('central directory lies past the end of the file (truncated)');
    let offset = directoryOffset;
    for (let i = 0; i < count; i++) {
      if (offset + 46 > buffer.length || buffer.readUInt32LE(offset) !== CENTRAL_SIGNATURE) throw new ZipFormatError(`central directory entry ${i} is corrupt`);
      const method = buffer.readUInt16LE(offset + 10);
      let compressedSize = buffer.readUInt32LE(offset + 20);
      let size = buffer.readUInt32LE(offset + 24);
      const nameLength = buffer.readUInt16LE(offset + 28);
      const extraLength = buffer.readUInt16LE(offset + 30);
      const commentLength = buffer.readUInt16LE(offset + 32);
      let localHeaderOffset = buffer.readUInt32LE(offset + 42);
      const name = buffer.toString('utf8', offset + 46, offset + 46 + nameLength);
      // The zip64 extra field lists only the saturated values, in this fixed order.
      let extra = offset + 46 + nameLength;
      const extraEnd = extra + extraLength;
      while (extra + 4 <= extraEnd) {
        const id = buffer.readUInt16LE(extra);
        const length = buffer.readUInt16LE(extra + 2);
        if (id === 0x0001) {
          let field = extra + 4;
          if (size === 0xffffffff) { size = readU64(buffer, field); field += 8; }
          if (compressedSize === 0xffffffff) { compressedSize = readU64(buffer, field); field += 8; }
          if (localHeaderOffset === 0xffffffff) { localHeaderOffset = readU64(buffer, field); }
        }
        extra += 4 + length;
      }
      this.entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
      offset = extraEnd + commentLength;
    }
  }

  names(): string[] {
    return [...this.entries.keys()];
  }

  /** The entry's bytes; STORED entries are views into the archive's buffer, not copies. */
  read(name: string): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw new ZipFormatError(`no entry ${name}`);
    const header = entry.localHeaderOffset;
    if (header + 30 > this.buffer.length || this.buffer.readUInt32LE(header) !== LOCAL_SIGNATURE) throw new ZipFormatError(`local header of ${name} is corrupt`);
    // The local header's name and extra lengths may differ from the central directory's (torch pads here for alignment).
    const start = header + 30 + this.buffer.readUInt16LE(header + 26) + this.buffer.readUInt16LE(header + 28);
    const end = start + entry.compressedSize;
    if (end > this.buffer.length) throw new ZipFormatError(`${name} extends past the end of the file (truncated)`);
    const raw = this.buffer.subarray(start, end);
    if (entry.method === 0) return raw;
    if (entry.method === 8) {
      const inflated = inflateRawSync(raw);
      if (inflated.length !== entry.size) throw new ZipFormatError(`${name} inflates to ${inflated.length} bytes, expected ${entry.size}`);
      return inflated;
    }
    throw new ZipFormatError(`${name} uses compression method ${entry.method} (only stored and deflate are supported)`);
  }
}
