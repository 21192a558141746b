/**
 * A small BMP decoder: HFUS scanners commonly export BMP, which sharp (libvips)
 * cannot read. Handles the Windows headers (BITMAPCOREHEADER, BITMAPINFOHEADER
 * and its V2–V5 extensions), 1/4/8-bit palettes, 16/24/32-bit pixels,
 * uncompressed or with bit-field masks. Compressed pixel data (RLE, embedded
 * JPEG/PNG) is refused with a reason rather than guessed at.
 */

/** Why a BMP cannot be decoded; callers turn it into an error naming the file. */
export class BmpFormatError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'BmpFormatError';
  }
}

export interface BmpImage {
  width: number;
  height: number;
  /** 1 for palettes of grays only, 4 when bit fields carry alpha, else 3. */
  channels: 1 | 3 | 4;
  /** Interleaved rows, top row first. */
  data: Uint8Array;
}

const FILE_HEADER = 14;
const COMPRESSION = { rgb: 0, rle8: 1, rle4: 2, bitfields: 3, jpeg: 4, png: 5, alphaBitfields: 6 } as const;
const COMPRESSION_NAMES: Record<number, string> = { 1: 'RLE8', 2: 'RLE4', 4: 'JPEG', 5: 'PNG' };
// A corrupt header can claim absurd sizes; refuse them before allocating.
const MAX_PIXELS = 1 << 28;

interface Header {
  width: number;
  height: number;
  topDown: boolean;
  bitsPerPixel: number;
  compression: number;
  pixelOffset: number;
  headerSize: number;
  paletteEntries: number;
  paletteEntrySize: 3 | 4;
}

export function isBmp(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x42 && bytes[1] === 0x4d;
}

function readHeader(bytes: Uint8Array): Header {
  if (!isBmp(bytes)) throw new BmpFormatError('it does not start with the BMP signature "BM"');
  if (bytes.length < FILE_HEADER + 12) throw new BmpFormatError('the file ends inside its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pixelOffset = view.getUint32(10, true);
  const headerSize = view.getUint32(14, true);
  if (headerSize === 12) {
    // OS/2 1.x core header: 16-bit sizes, 3-byte palette entries, never compressed.
    const bitsPerPixel = view.getUint16(24, true);
    const height = view.getInt16(20, true);
    return { width: view.getUint16(18, true), height: Math.abs(height), topDown: height < 0, bitsPerPixel, compression: COMPRESSION.rgb, pixelOffset, headerSize, paletteEntries: bitsPerPixel <= 8 ? 2 ** bitsPerPixel : 0, paletteEntrySize: 3 };
  }
  if (![40, 52, 56, 64, 108, 124].includes(headerSize)) throw new BmpFormatError(`its DIB header has an unknown size of ${headerSize} bytes`);
  if (bytes.length < FILE_HEADER + headerSize) throw new BmpFormatError('the file ends inside its header');
  const height = view.getInt32(22, true);
  const bitsPerPixel = view.getUint16(28, true);
  const coloursUsed = view.getUint32(46, true);
  return {
    width: view.getInt32(18, true),
    height: Math.abs(height),
    topDown: height < 0,
    bitsPerPixel,
    compression: view.getUint32(30, true),
    pixelOffset,
    headerSize,
    paletteEntries: bitsPerPixel <= 8 ? coloursUsed || 2 ** bitsPerPixel : 0,
    paletteEntrySize: 4,
  };
}

/** Width and height from the header alone. */
export function bmpSize(bytes: Uint8Array): { width: number; height: number } {
  const { width, height } = readHeader(bytes);
  return { width, height };
}

interface Channel {
  mask: number;
  shift: number;
  max: number;
}

function channelOf(mask: number): Channel {
  mask >>>= 0;
  if (mask === 0) return { mask: 0, shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  let bits = 0;
  while (shift + bits < 32 && (mask >>> (shift + bits)) & 1) bits++;
  return { mask, shift, max: 2 ** bits - 1 };
}

function extract(pixel: number, channel: Channel): number {
  if (channel.max === 0) return 0;
  const value = (pixel & channel.mask) >>> channel.shift;
  return channel.max === 255 ? value : Math.round((value * 255) / channel.max);
}

function masksOf(bytes: Uint8Array, header: Header): Channel[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { compression, bitsPerPixel } = header;
  if (compression === COMPRESSION.rgb) {
    // Without bit fields, 16-bit pixels are 5-5-5 and the fourth byte of a 32-bit pixel is unused.
    return bitsPerPixel === 16 ? [0x7c00, 0x03e0, 0x001f, 0].map(channelOf) : [0xff0000, 0xff00, 0xff, 0].map(channelOf);
  }
  // The masks sit right after a 40-byte header, or inside the larger headers, at the same offsets.
  const withAlpha = compression === COMPRESSION.alphaBitfields || header.headerSize >= 56;
  const needed = FILE_HEADER + 40 + (withAlpha ? 16 : 12);
  if (bytes.length < needed) throw new BmpFormatError('the file ends inside its colour masks');
  const at = (i: number) => view.getUint32(FILE_HEADER + 40 + 4 * i, true);
  return [at(0), at(1), at(2), withAlpha ? at(3) : 0].map(channelOf);
}

function paletteOf(bytes: Uint8Array, header: Header): Uint8Array[] {
  const extraMasks = header.headerSize === 40 ? (header.compression === COMPRESSION.bitfields ? 12 : header.compression === COMPRESSION.alphaBitfields ? 16 : 0) : 0;
  const start = FILE_HEADER + header.headerSize + extraMasks;
  // Some writers store fewer entries than the header claims; the pixel offset tells where the palette really ends.
  const room = Math.floor((Math.min(header.pixelOffset, bytes.length) - start) / header.paletteEntrySize);
  const entries = Math.min(header.paletteEntries, 2 ** header.bitsPerPixel, room);
  if (entries <= 0) throw new BmpFormatError('it has no room for the palette its pixels need');
  const palette: Uint8Array[] = [];
  for (let i = 0; i < entries; i++) {
    const entry = start + i * header.paletteEntrySize;
    palette.push(Uint8Array.of(bytes[entry + 2], bytes[entry + 1], bytes[entry]));
  }
  return palette;
}

function checkSupported(header: Header): void {
  const { compression, bitsPerPixel, width, height } = header;
  const name = COMPRESSION_NAMES[compression];
  if (name) throw new BmpFormatError(`it uses ${name} compression, which salgrid's BMP reader does not support`);
  // OS/2 2.x headers reuse the compression numbers for Huffman and RLE24, none of which is read here.
  if (header.headerSize === 64 && compression !== COMPRESSION.rgb) throw new BmpFormatError(`it uses OS/2 compression type ${compression}, which salgrid's BMP reader does not support`);
  if (compression !== COMPRESSION.rgb && compression !== COMPRESSION.bitfields && compression !== COMPRESSION.alphaBitfields) {
    throw new BmpFormatError(`it uses unknown compression type ${compression}`);
  }
  if (compression !== COMPRESSION.rgb && bitsPerPixel !== 16 && bitsPerPixel !== 32) throw new BmpFormatError(`it has bit-field masks on ${bitsPerPixel}-bit pixels`);
  if (![1, 4, 8, 16, 24, 32].includes(bitsPerPixel)) throw new BmpFormatError(`it has ${bitsPerPixel} bits per pixel`);
  if (width <= 0 || height <= 0) throw new BmpFormatError(`its header gives a size of ${width}×${height}`);
  if (width * height > MAX_PIXELS) throw new BmpFormatError(`its header gives an implausible size of ${width}×${height}`);
}

export function decodeBmp(bytes: Uint8Array): BmpImage {
  const header = readHeader(bytes);
  checkSupported(header);
  const { width, height, bitsPerPixel, pixelOffset, topDown } = header;
  // Rows are padded to whole 32-bit words.
  const stride = Math.floor((bitsPerPixel * width + 31) / 32) * 4;
  const rowBytes = Math.ceil((bitsPerPixel * width) / 8);
  if (pixelOffset + stride * (height - 1) + rowBytes > bytes.length) throw new BmpFormatError('the file ends before its last row of pixels');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

  if (bitsPerPixel <= 8) {
    const palette = paletteOf(bytes, header);
    const gray = palette.every(([r, g, b]) => r === g && g === b);
    const channels = gray ? 1 : 3;
    const data = new Uint8Array(width * height * channels);
    const perByte = 8 / bitsPerPixel;
    const lowBits = (1 << bitsPerPixel) - 1;
    for (let row = 0; row < height; row++) {
      const source = pixelOffset + stride * (topDown ? row : height - 1 - row);
      for (let x = 0; x < width; x++) {
        const byte = bytes[source + Math.floor(x / perByte)];
        // Within a byte, the leftmost pixel is in the most significant bits.
        const index = (byte >> (8 - bitsPerPixel * ((x % perByte) + 1))) & lowBits;
        if (index >= palette.length) throw new BmpFormatError(`a pixel refers to palette entry ${index} of ${palette.length}`);
        const target = (row * width + x) * channels;
        if (gray) data[target] = palette[index][0];
        else data.set(palette[index], target);
      }
    }
    return { width, height, channels, data };
  }

  if (bitsPerPixel === 24) {
    const data = new Uint8Array(width * height * 3);
    for (let row = 0; row < height; row++) {
      const source = pixelOffset + stride * (topDown ? row : height - 1 - row);
      for (let x = 0; x < width; x++) {
        const from = source + 3 * x;
        const target = (row * width + x) * 3;
        data[target] = bytes[from + 2];
        data[target + 1] = bytes[from + 1];
        data[target + 2] = bytes[from];
      }
    }
    return { width, height, channels: 3, data };
  }

  const [red, green, blue, alpha] = masksOf(bytes, header);
  const channels = alpha.max > 0 ? 4 : 3;
  const data = new Uint8Array(width * height * channels);
  for (let row = 0; row < height; row++) {
    const source = pixelOffset + stride * (topDown ? row : height - 1 - row);
    for (let x = 0; x < width; x++) {
      const pixel = bitsPerPixel === 16 ? view.getUint16(source + 2 * x, true) : view.getUint32(source + 4 * x, true);
      const target = (row * width + x) * channels;
      data[target] = extract(pixel, red);
      data[target + 1] = extract(pixel, green);
      data[target + 2] = extract(pixel, blue);
      if (channels === 4) data[target + 3] = extract(pixel, alpha);
    }
  }
  return { width, height, channels, data };
}
