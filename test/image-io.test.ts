import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { MissingInputError, isUserError } from '../src/core/errors.ts';
import { decodeBmp } from '../src/core/io/bmp.ts';
import { UnreadableImageError, readImage, readImageSize, writePng, type RawImage } from '../src/core/io/image-io.ts';
import { tempDir } from './helpers.ts';

// ------------------------------------------------------------ a tiny BMP encoder

interface BmpSpec {
  width: number;
  height: number;
  bitsPerPixel: 1 | 4 | 8 | 16 | 24 | 32;
  /** Rows top first; per pixel a palette index (≤ 8 bits) or [r, g, b, a?]. */
  pixels: (number | number[])[][];
  topDown?: boolean;
  headerSize?: 40 | 108 | 124;
  compression?: number;
  /** r, g, b, a masks for bit-field compression. */
  masks?: [number, number, number, number];
  palette?: [number, number, number][];
}

/** Writes BMP bytes by the book, independently of the decoder under test. */
function encodeBmp(spec: BmpSpec): Buffer {
  const { width, height, bitsPerPixel, pixels, topDown = false, headerSize = 40, compression = 0, masks, palette = [] } = spec;
  const stride = Math.floor((bitsPerPixel * width + 31) / 32) * 4;
  const masksAfterHeader = headerSize === 40 && compression === 3 ? 12 : 0;
  const pixelOffset = 14 + headerSize + masksAfterHeader + palette.length * 4;
  const out = Buffer.alloc(pixelOffset + stride * height);
  out.write('BM', 0, 'latin1');
  out.writeUInt32LE(out.length, 2);
  out.writeUInt32LE(pixelOffset, 10);
  out.writeUInt32LE(headerSize, 14);
  out.writeInt32LE(width, 18);
  out.writeInt32LE(topDown ? -height : height, 22);
  out.writeUInt16LE(1, 26);
  out.writeUInt16LE(bitsPerPixel, 28);
  out.writeUInt32LE(compression, 30);
  out.writeUInt32LE(stride * height, 34);
  out.writeUInt32LE(palette.length, 46);
  if (masks) masks.slice(0, headerSize === 40 ? 3 : 4).forEach((m, i) => out.writeUInt32LE(m >>> 0, 54 + 4 * i));
  palette.forEach(([r, g, b], i) => {
    const at = 14 + headerSize + masksAfterHeader + 4 * i;
    out[at] = b;
    out[at + 1] = g;
    out[at + 2] = r;
  });
  for (let y = 0; y < height; y++) {
    const row = pixelOffset + stride * (topDown ? y : height - 1 - y);
    for (let x = 0; x < width; x++) {
      const p = pixels[y][x];
      if (bitsPerPixel <= 8) {
        const perByte = 8 / bitsPerPixel;
        out[row + Math.floor(x / perByte)] |= (p as number) << (8 - bitsPerPixel * ((x % perByte) + 1));
      } else if (bitsPerPixel === 24) {
        const [r, g, b] = p as number[];
        out[row + 3 * x] = b;
        out[row + 3 * x + 1] = g;
        out[row + 3 * x + 2] = r;
      } else if (bitsPerPixel === 16) {
        const [r, g, b] = p as number[];
        // 5-6-5 when masks are given, else the default 5-5-5.
        const value = masks ? ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3) : ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
        out.writeUInt16LE(value, row + 2 * x);
      } else {
        const [r, g, b, a = 0] = p as number[];
        out.writeUInt32LE(masks ? (((a << 24) | (r << 16) | (g << 8) | b) >>> 0) : (((r << 16) | (g << 8) | b) >>> 0), row + 4 * x);
      }
    }
  }
  return out;
}

const grid = <T>(width: number, height: number, f: (x: number, y: number) => T): T[][] => Array.from({ length: height }, (_, y) => Array.from({ length: width }, (_, x) => f(x, y)));
const flat = (rows: (number | number[])[][]) => rows.flat(2);

function writeBmp(dir: string, name: string, spec: BmpSpec): string {
  const file = path.join(dir, name);
  writeFileSync(file, encodeBmp(spec));
  return file;
}

async function expectUnreadable(file: string, pattern?: RegExp) {
  await assert.rejects(readImage(file), (error: Error) => {
    assert.ok(error instanceof UnreadableImageError, `expected UnreadableImageError, got ${error.name}: ${error.message}`);
    assert.ok(isUserError(error));
    assert.ok(error.message.includes(file), error.message);
    assert.match(error.message, /is not a readable image/);
    assert.match(error.message, /re-export/);
    if (pattern) assert.match(error.message, pattern);
    assert.equal(error.message.split('\n').length, 1);
    return true;
  });
}

const samples = (image: RawImage) => Array.from(image.data);

// ------------------------------------------------------------ tests

describe('BMP', () => {
  const dir = tempDir();

  it('reads an 8-bit gray palette bottom-up with padded rows (width 5) as one channel', async () => {
    const gray = Array.from({ length: 256 }, (_, i) => [i, i, i] as [number, number, number]);
    const pixels = grid(5, 3, (x, y) => (x * 50 + y * 3) % 256);
    const image = await readImage(writeBmp(dir, 'gray8.bmp', { width: 5, height: 3, bitsPerPixel: 8, pixels, palette: gray }));
    assert.deepEqual([image.width, image.height, image.channels, image.bitDepth], [5, 3, 1, 8]);
    assert.deepEqual(samples(image), flat(pixels));
  });

  it('reads an 8-bit colour palette as RGB', async () => {
    const palette: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]];
    const pixels = grid(5, 2, (x, y) => (x + y) % 4);
    const image = await readImage(writeBmp(dir, 'pal8.bmp', { width: 5, height: 2, bitsPerPixel: 8, pixels, palette }));
    assert.equal(image.channels, 3);
    assert.deepEqual(samples(image), flat(pixels.map((row) => row.map((i) => palette[i]))));
  });

  it('reads 4-bit and 1-bit palettes (several pixels per byte)', async () => {
    const palette: [number, number, number][] = Array.from({ length: 16 }, (_, i) => [i * 16, 255 - i * 16, i]);
    const pixels4 = grid(7, 3, (x, y) => (x * 3 + y) % 16);
    const four = await readImage(writeBmp(dir, 'pal4.bmp', { width: 7, height: 3, bitsPerPixel: 4, pixels: pixels4, palette }));
    assert.deepEqual(samples(four), flat(pixels4.map((row) => row.map((i) => palette[i]))));
    const pixels1 = grid(11, 2, (x, y) => (x + y) % 2);
    const one = await readImage(writeBmp(dir, 'pal1.bmp', { width: 11, height: 2, bitsPerPixel: 1, pixels: pixels1, palette: [[0, 0, 0], [255, 255, 255]] }));
    assert.equal(one.channels, 1);
    assert.deepEqual(samples(one), flat(pixels1).map((v) => v * 255));
  });

  it('reads 24-bit bottom-up rows with padding (width 5), pixel for pixel', async () => {
    const pixels = grid(5, 4, (x, y) => [x * 40, y * 60, (x * 7 + y * 13) % 256]);
    const file = writeBmp(dir, 'rgb24.bmp', { width: 5, height: 4, bitsPerPixel: 24, pixels });
    const image = await readImage(file);
    assert.deepEqual([image.width, image.height, image.channels], [5, 4, 3]);
    assert.deepEqual(samples(image), flat(pixels));
    assert.deepEqual(await readImageSize(file), { width: 5, height: 4 });
  });

  it('reads 32-bit top-down BI_RGB, ignoring the unused fourth byte', async () => {
    const pixels = grid(3, 2, (x, y) => [x * 80, y * 100, 200]);
    const image = await readImage(writeBmp(dir, 'rgb32.bmp', { width: 3, height: 2, bitsPerPixel: 32, pixels, topDown: true }));
    assert.equal(image.channels, 3);
    assert.deepEqual(samples(image), flat(pixels));
  });

  it('reads 32-bit BI_BITFIELDS with alpha from a V5 header, and with a V4 header', async () => {
    const pixels = grid(3, 3, (x, y) => [x * 80, y * 100, 17, 255 - x * 60]);
    for (const headerSize of [124, 108] as const) {
      const file = writeBmp(dir, `argb32-${headerSize}.bmp`, { width: 3, height: 3, bitsPerPixel: 32, pixels, headerSize, compression: 3, masks: [0xff0000, 0xff00, 0xff, 0xff000000], topDown: headerSize === 124 });
      const image = await readImage(file);
      assert.equal(image.channels, 4);
      assert.deepEqual(samples(image), flat(pixels));
      assert.deepEqual(await readImageSize(file), { width: 3, height: 3 });
    }
  });

  it('reads 32-bit BI_BITFIELDS masks after a 40-byte header, and 16-bit 5-6-5 and 5-5-5 pixels', async () => {
    const pixels = grid(2, 2, (x, y) => [x * 255, y * 255, 255]);
    const bgr = await readImage(writeBmp(dir, 'bf32.bmp', { width: 2, height: 2, bitsPerPixel: 32, pixels, compression: 3, masks: [0xff0000, 0xff00, 0xff, 0] }));
    assert.equal(bgr.channels, 3);
    assert.deepEqual(samples(bgr), flat(pixels));
    const five65 = await readImage(writeBmp(dir, 'bf16.bmp', { width: 3, height: 2, bitsPerPixel: 16, pixels: grid(3, 2, (x) => [x * 127, 255, 0]), compression: 3, masks: [0xf800, 0x07e0, 0x001f, 0] }));
    // 127 keeps its top 5 bits (15 of 31) and scales back to round(15 · 255 / 31) = 123.
    assert.deepEqual(samples(five65), [0, 255, 0, 123, 255, 0, 255, 255, 0, 0, 255, 0, 123, 255, 0, 255, 255, 0]);
    const five55 = await readImage(writeBmp(dir, 'rgb16.bmp', { width: 1, height: 1, bitsPerPixel: 16, pixels: [[[255, 0, 255]]] }));
    assert.deepEqual(samples(five55), [255, 0, 255]);
  });

  it('refuses RLE compression and truncated pixel data with an error naming the file', async () => {
    const rle = writeBmp(dir, 'rle8.bmp', { width: 2, height: 2, bitsPerPixel: 8, pixels: grid(2, 2, () => 0), palette: [[0, 0, 0]], compression: 1 });
    await expectUnreadable(rle, /RLE8 compression/);
    const whole = encodeBmp({ width: 5, height: 4, bitsPerPixel: 24, pixels: grid(5, 4, () => [1, 2, 3]) });
    const truncated = path.join(dir, 'truncated.bmp');
    writeFileSync(truncated, whole.subarray(0, whole.length - 20));
    await expectUnreadable(truncated, /ends before its last row/);
    assert.throws(() => decodeBmp(Buffer.from('BMxx')), /ends inside its header/);
  });
});

describe('PNG, JPEG, TIFF, WebP', () => {
  const dir = tempDir();
  const ramp = (n: number, max: number) => Array.from({ length: n }, (_, i) => (i * 7919 + 13) % (max + 1));

  it('round-trips 8-bit PNG gray, RGB and RGBA exactly, and reads gray+alpha as RGBA', async () => {
    for (const channels of [1, 3, 4] as const) {
      const data = Uint8Array.from(ramp(5 * 3 * channels, 255));
      const file = path.join(dir, `c${channels}.png`);
      await writePng(file, { width: 5, height: 3, channels, data });
      const image = await readImage(file);
      assert.deepEqual([image.width, image.height, image.channels, image.bitDepth], [5, 3, channels, 8]);
      assert.ok(image.data instanceof Uint8Array);
      assert.deepEqual(samples(image), Array.from(data));
    }
    const grayAlpha = Uint8Array.from([10, 255, 20, 128, 30, 0, 40, 7]);
    const file = path.join(dir, 'ga.png');
    await writePng(file, { width: 2, height: 2, channels: 2, data: grayAlpha });
    assert.equal((await sharp(file).metadata()).channels, 2);
    const image = await readImage(file);
    assert.equal(image.channels, 4);
    assert.deepEqual(samples(image), [10, 10, 10, 255, 20, 20, 20, 128, 30, 30, 30, 0, 40, 40, 40, 7]);
  });

  it('keeps the 16-bit depth of 16-bit PNGs (gray, RGB, RGBA, gray+alpha)', async () => {
    for (const channels of [1, 3, 4] as const) {
      const data = Uint16Array.from(ramp(4 * 3 * channels, 65535));
      const file = path.join(dir, `d16-${channels}.png`);
      await writePng(file, { width: 4, height: 3, channels, data });
      const meta = await sharp(file).metadata();
      assert.equal(meta.depth, 'ushort', 'the file written is 16-bit');
      const image = await readImage(file);
      assert.deepEqual([image.channels, image.bitDepth], [channels, 16]);
      assert.ok(image.data instanceof Uint16Array);
      assert.deepEqual(samples(image), Array.from(data));
    }
    const file = path.join(dir, 'ga16.png');
    await writePng(file, { width: 2, height: 1, channels: 2, data: Uint16Array.from([1000, 65535, 50000, 3]) });
    const image = await readImage(file);
    assert.deepEqual([image.channels, image.bitDepth], [4, 16]);
    assert.deepEqual(samples(image), [1000, 1000, 1000, 65535, 50000, 50000, 50000, 3]);
  });

  it('reads palette PNGs as RGB', async () => {
    const data = Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 0, 0]);
    const file = path.join(dir, 'palette.png');
    await sharp(data, { raw: { width: 2, height: 2, channels: 3 } }).png({ palette: true }).toFile(file);
    assert.equal((await sharp(file).metadata()).isPalette, true);
    const image = await readImage(file);
    assert.equal(image.channels, 3);
    assert.deepEqual(samples(image), Array.from(data));
  });

  it('applies the EXIF orientation of a JPEG (orientation 6: turned a quarter clockwise)', async () => {
    // 32 wide × 16 tall: left half red, right half blue.
    const width = 32;
    const height = 16;
    const raw = Buffer.alloc(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw[(y * width + x) * 3 + (x < width / 2 ? 0 : 2)] = 255;
    const file = path.join(dir, 'rotated.jpg');
    await sharp(raw, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file);
    assert.equal((await sharp(file).metadata()).orientation, 6);
    const image = await readImage(file);
    assert.deepEqual([image.width, image.height, image.channels], [16, 32, 3], 'width and height swap');
    assert.deepEqual(await readImageSize(file), { width: 16, height: 32 });
    const at = (x: number, y: number) => Array.from(image.data.slice((y * image.width + x) * 3, (y * image.width + x) * 3 + 3));
    // After a clockwise quarter turn the old left (red) half is on top.
    const [r1, , b1] = at(8, 4);
    const [r2, , b2] = at(8, 27);
    assert.ok(r1 > 200 && b1 < 60, `top is red: ${at(8, 4)}`);
    assert.ok(b2 > 200 && r2 < 60, `bottom is blue: ${at(8, 27)}`);
  });

  it('reads gray JPEGs as one channel', async () => {
    const file = path.join(dir, 'gray.jpg');
    await sharp(Buffer.alloc(8 * 8, 128), { raw: { width: 8, height: 8, channels: 1 } }).toColourspace('b-w').jpeg().toFile(file);
    const image = await readImage(file);
    assert.deepEqual([image.width, image.height, image.channels, image.bitDepth], [8, 8, 1, 8]);
    assert.ok(Math.abs(image.data[0] - 128) <= 2);
  });

  it('reads TIFF (RGB and gray) and lossless WebP exactly', async () => {
    const rgb = Uint8Array.from(ramp(6 * 4 * 3, 255));
    const tiff = path.join(dir, 'image.tiff');
    await sharp(rgb, { raw: { width: 6, height: 4, channels: 3 } }).tiff({ compression: 'lzw' }).toFile(tiff);
    const fromTiff = await readImage(tiff);
    assert.deepEqual([fromTiff.width, fromTiff.height, fromTiff.channels], [6, 4, 3]);
    assert.deepEqual(samples(fromTiff), Array.from(rgb));
    const gray = Uint8Array.from(ramp(6 * 4, 255));
    const grayTiff = path.join(dir, 'gray.TIF');
    await sharp(gray, { raw: { width: 6, height: 4, channels: 1 } }).toColourspace('b-w').tiff({ compression: 'deflate' }).toFile(grayTiff);
    const fromGrayTiff = await readImage(grayTiff);
    assert.equal(fromGrayTiff.channels, 1);
    assert.deepEqual(samples(fromGrayTiff), Array.from(gray));
    const webp = path.join(dir, 'image.webp');
    await sharp(rgb, { raw: { width: 6, height: 4, channels: 3 } }).webp({ lossless: true }).toFile(webp);
    const fromWebp = await readImage(webp);
    assert.deepEqual([fromWebp.width, fromWebp.height, fromWebp.channels], [6, 4, 3]);
    assert.deepEqual(samples(fromWebp), Array.from(rgb));
    assert.deepEqual(await readImageSize(webp), { width: 6, height: 4 });
    assert.deepEqual(await readImageSize(tiff), { width: 6, height: 4 });
  });
});

describe('bad image files', () => {
  const dir = tempDir();

  it('gives a one-sentence error naming a truncated PNG', async () => {
    const noise = Uint8Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 2654435761) >>> 24);
    const whole = await sharp(noise, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
    const file = path.join(dir, 'truncated.png');
    writeFileSync(file, whole.subarray(0, Math.floor(whole.length / 2)));
    await expectUnreadable(file, /truncated/);
  });

  it('gives a one-sentence error naming a text file called .png', async () => {
    const file = path.join(dir, 'notes.png');
    writeFileSync(file, 'these are my notes, not an image\n');
    await expectUnreadable(file, /no image format salgrid reads/);
    await assert.rejects(readImageSize(file), (error: Error) => error instanceof UnreadableImageError && error.message.includes(file));
  });

  it('gives a one-sentence error naming an empty file and a truncated JPEG', async () => {
    const empty = path.join(dir, 'empty.jpg');
    writeFileSync(empty, '');
    await expectUnreadable(empty, /the file is empty/);
    const jpeg = await sharp(Buffer.alloc(32 * 32 * 3, 90), { raw: { width: 32, height: 32, channels: 3 } }).jpeg().toBuffer();
    const cut = path.join(dir, 'cut.jpg');
    writeFileSync(cut, jpeg.subarray(0, jpeg.length - 200));
    await expectUnreadable(cut);
  });

  it('reports a missing file as a missing input', async () => {
    await assert.rejects(readImage(path.join(dir, 'absent.png')), MissingInputError);
    await assert.rejects(readImageSize(path.join(dir, 'absent.png')), MissingInputError);
  });
});

describe('writePng', () => {
  it('writes atomically: the folder holds the PNG and no temporary file', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'nested', 'out.png');
    await writePng(file, { width: 2, height: 1, channels: 1, data: Uint8Array.from([0, 255]) });
    assert.deepEqual(readdirSync(path.dirname(file)), ['out.png']);
    assert.deepEqual(readFileSync(file).subarray(1, 4).toString('latin1'), 'PNG');
  });

  it('refuses data of the wrong length', async () => {
    await assert.rejects(writePng(path.join(tempDir(), 'x.png'), { width: 2, height: 2, channels: 1, data: new Uint8Array(3) }), /3 samples for 2×2×1/);
  });
});
