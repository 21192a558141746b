/**
 * Image files in and out. Decoding goes through sharp (PNG, JPEG, TIFF, WebP)
 * and our own BMP reader; every decoded image is interleaved rows with 1, 3 or
 * 4 channels at 8 or 16 bits, so callers never meet palettes, gray+alpha or
 * EXIF orientation.
 */
import { open, readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { MissingInputError, UserError, errorMessage } from '../errors.ts';
import { writeFileAtomic } from '../store/atomic.ts';
import { bmpSize, decodeBmp, isBmp } from './bmp.ts';

/** File name extensions salgrid reads as images (lower case). */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp', '.bmp'] as const;

export interface RawImage {
  width: number;
  height: number;
  channels: 1 | 3 | 4;
  bitDepth: 8 | 16;
  /** Interleaved (height × width × channels), top row first. */
  data: Uint8Array | Uint16Array;
}

/** What `writePng` takes: 8-bit data as Uint8Array, 16-bit as Uint16Array. */
export interface PixelData {
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
  data: Uint8Array | Uint16Array;
}

/** A file that exists but cannot be decoded as an image. */
export class UnreadableImageError extends UserError {
  constructor(
    readonly file: string,
    readonly reason: string,
    hint = 're-export it as PNG or another supported format',
  ) {
    super(`${file} is not a readable image (${reason}); ${hint}.`);
  }
}

export function isImageFileName(name: string): boolean {
  const lower = name.toLowerCase();
  return !name.startsWith('.') && IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

async function readBytes(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingInputError(file, 'image');
    throw new UnreadableImageError(file, errorMessage(error));
  }
}

/** libvips' wording for common failures, said the way a user thinks of the file. */
const PLAIN_REASONS: [RegExp, string][] = [
  [/buffer is empty/i, 'the file is empty'],
  [/unsupported image format/i, 'its contents are in no image format salgrid reads'],
  [/end of stream|premature end|truncated|not enough data|out of data/i, 'the file ends early, as if truncated'],
  [/corrupt header/i, 'its header is damaged'],
];

function reasonOf(error: unknown): string {
  const message = errorMessage(error).split('\n')[0].trim();
  const plain = PLAIN_REASONS.find(([pattern]) => pattern.test(message));
  if (plain) return plain[1];
  return message || 'unknown decoding error';
}

function expandGrayAlpha<T extends Uint8Array | Uint16Array>(data: T, pixels: number): T {
  const out = new (data.constructor as { new (n: number): T })(pixels * 4);
  for (let i = 0; i < pixels; i++) {
    const gray = data[2 * i];
    out[4 * i] = gray;
    out[4 * i + 1] = gray;
    out[4 * i + 2] = gray;
    out[4 * i + 3] = data[2 * i + 1];
  }
  return out;
}

function asUint16(buffer: Buffer): Uint16Array {
  // A typed view needs 2-byte alignment; copy in the rare case sharp hands back an odd offset.
  const aligned = buffer.byteOffset % 2 === 0 ? buffer : Buffer.from(buffer);
  return new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.length / 2);
}

async function decodeWithSharp(bytes: Buffer): Promise<RawImage> {
  const meta = await sharp(bytes).metadata();
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') {
    throw new Error(`it stores ${meta.depth} samples, and salgrid reads 8- and 16-bit unsigned images only`);
  }
  const sixteen = meta.depth === 'ushort';
  const gray = meta.space === 'b-w' || meta.space === 'grey16';
  // rotate() with no angle applies the EXIF orientation, so pixels match what viewers show.
  let pipeline = sharp(bytes).rotate();
  if (sixteen) pipeline = pipeline.toColourspace(gray ? 'grey16' : 'rgb16').raw({ depth: 'ushort' });
  // libvips drops the alpha band when converting gray+alpha to 8-bit b-w, so that case goes through sRGB (exact for grays).
  else if (gray && !meta.hasAlpha) pipeline = pipeline.toColourspace('b-w').raw();
  else pipeline = pipeline.toColourspace('srgb').raw();
  const { data, info } = await pipeline.toBuffer({ resolveWithObject: true });
  const pixels = info.width * info.height;
  let samples: Uint8Array | Uint16Array = sixteen ? asUint16(data) : new Uint8Array(data.buffer, data.byteOffset, data.length);
  let channels = info.channels as number;
  if (channels === 2) {
    samples = expandGrayAlpha(samples, pixels);
    channels = 4;
  }
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new Error(`it decodes to ${channels} channels`);
  return { width: info.width, height: info.height, channels, bitDepth: sixteen ? 16 : 8, data: samples };
}

/**
 * Decodes an image file. A file that is not a decodable image (corrupt,
 * truncated, not an image at all) raises an `UnreadableImageError` naming it.
 */
export async function readImage(file: string): Promise<RawImage> {
  const bytes = await readBytes(file);
  try {
    if (isBmp(bytes)) return { ...decodeBmp(bytes), bitDepth: 8 };
    return await decodeWithSharp(bytes);
  } catch (error) {
    // A TypeError is a bug of ours; anything else the decoders raise means the bytes are not a usable image.
    if (error instanceof UserError || error instanceof TypeError) throw error;
    throw new UnreadableImageError(file, reasonOf(error));
  }
}

/** Width and height as `readImage` would return them (EXIF orientation applied), from the file's header. */
export async function readImageSize(file: string): Promise<{ width: number; height: number }> {
  let head: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      head = Buffer.alloc(256);
      const { bytesRead } = await handle.read(head, 0, head.length, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new MissingInputError(file, 'image');
    throw new UnreadableImageError(file, errorMessage(error));
  }
  try {
    if (isBmp(head)) return bmpSize(head);
    const meta = await sharp(file).metadata();
    if (meta.autoOrient) return { width: meta.autoOrient.width, height: meta.autoOrient.height };
    if (!meta.width || !meta.height) throw new Error('its header gives no size');
    return (meta.orientation ?? 1) >= 5 ? { width: meta.height, height: meta.width } : { width: meta.width, height: meta.height };
  } catch (error) {
    throw new UnreadableImageError(file, reasonOf(error));
  }
}

/** PNG bytes of raw pixels: 8-bit from a Uint8Array, 16-bit from a Uint16Array. */
export async function encodePng(image: PixelData): Promise<Buffer> {
  const { width, height, channels, data } = image;
  if (data.length !== width * height * channels) {
    throw new Error(`encodePng: ${data.length} samples for ${width}×${height}×${channels}`);
  }
  const sixteen = data instanceof Uint16Array;
  const space = channels <= 2 ? (sixteen ? 'grey16' : 'b-w') : sixteen ? 'rgb16' : 'srgb';
  // Encoder settings pinned, so the bytes depend on the pixels alone (generated datasets rely on it).
  return sharp(data, { raw: { width, height, channels } }).toColourspace(space).png({ compressionLevel: 6, adaptiveFiltering: false, palette: false }).toBuffer();
}

/** Writes a PNG atomically: a reader never sees half a file. */
export async function writePng(file: string, image: PixelData): Promise<void> {
  await writeFileAtomic(file, await encodePng(image));
}
