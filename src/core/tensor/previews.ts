/**
 * PNG previews of saliency maps, for the report and for a researcher's eye:
 * the map in gray, and the map in JET colours laid over its image (the way
 * CAM papers show them).
 */
import { writePng, type RawImage } from '../io/image-io.ts';

export interface MapPreviewOptions {
  /** Map values shown as black / red; the map's own min and max when absent. */
  range?: [number, number];
}

export interface OverlayOptions extends MapPreviewOptions {
  /** Weight of the colour map against the image: 0 shows the image only, 1 the map only. */
  alpha?: number;
}

export interface Preview {
  width: number;
  height: number;
  channels: 1 | 3;
  data: Uint8Array;
}

/** The map's values mapped to [0, 1]; non-finite values and flat maps give 0. */
function normalised(map: Float32Array, range?: [number, number]): Float32Array {
  let [low, high] = range ?? [Infinity, -Infinity];
  if (!range) {
    for (const v of map) {
      if (!Number.isFinite(v)) continue;
      if (v < low) low = v;
      if (v > high) high = v;
    }
  }
  const out = new Float32Array(map.length);
  const span = high - low;
  if (!(span > 0)) return out;
  for (let i = 0; i < map.length; i++) {
    const v = (map[i] - low) / span;
    out[i] = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
  }
  return out;
}

function checkMap(map: Float32Array, width: number, height: number): void {
  if (map.length !== width * height) throw new Error(`map has ${map.length} values, not ${width}×${height}`);
}

/** The map as 8-bit gray: its range scaled to 0–255. */
export function grayPreview(map: Float32Array, width: number, height: number, options: MapPreviewOptions = {}): Preview {
  checkMap(map, width, height);
  const unit = normalised(map, options.range);
  const data = new Uint8Array(unit.length);
  for (let i = 0; i < unit.length; i++) data[i] = Math.round(unit[i] * 255);
  return { width, height, channels: 1, data };
}

/**
 * The JET colour map (MATLAB's definition): dark blue → blue → cyan → yellow
 * → red → dark red, each of r, g, b a clipped tent of slope 4 centred at
 * 3/4, 1/2 and 1/4. Returns 0–255 components.
 */
export function jet(value: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, Number.isFinite(value) ? value : 0));
  const band = (centre: number) => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - centre))));
  return [band(3), band(2), band(1)];
}

/** Bilinear resize with half-pixel centres, so a map and its image line up pixel for pixel. */
export function resizeMap(map: Float32Array, width: number, height: number, toWidth: number, toHeight: number): Float32Array {
  checkMap(map, width, height);
  if (width === toWidth && height === toHeight) return map;
  const out = new Float32Array(toWidth * toHeight);
  const sx = width / toWidth;
  const sy = height / toHeight;
  for (let y = 0; y < toHeight; y++) {
    const fy = Math.min(height - 1, Math.max(0, (y + 0.5) * sy - 0.5));
    const y0 = Math.floor(fy);
    const y1 = Math.min(height - 1, y0 + 1);
    const wy = fy - y0;
    for (let x = 0; x < toWidth; x++) {
      const fx = Math.min(width - 1, Math.max(0, (x + 0.5) * sx - 0.5));
      const x0 = Math.floor(fx);
      const x1 = Math.min(width - 1, x0 + 1);
      const wx = fx - x0;
      const top = map[y0 * width + x0] * (1 - wx) + map[y0 * width + x1] * wx;
      const bottom = map[y1 * width + x0] * (1 - wx) + map[y1 * width + x1] * wx;
      out[y * toWidth + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** The image's colour at a pixel, as 8-bit RGB (gray repeated, alpha ignored, 16-bit scaled down). */
function rgbAt(image: RawImage, pixel: number): [number, number, number] {
  const scale = image.bitDepth === 16 ? 1 / 257 : 1;
  const at = pixel * image.channels;
  if (image.channels === 1) {
    const gray = image.data[at] * scale;
    return [gray, gray, gray];
  }
  return [image.data[at] * scale, image.data[at + 1] * scale, image.data[at + 2] * scale];
}

/**
 * The map in JET colours blended over the image, at the image's size (the
 * map is resized to it when they differ): (1 − alpha)·image + alpha·jet(map).
 */
export function jetOverlay(map: Float32Array, mapWidth: number, mapHeight: number, image: RawImage, options: OverlayOptions = {}): Preview {
  const alpha = options.alpha ?? 0.5;
  if (!(alpha >= 0 && alpha <= 1)) throw new Error(`overlay alpha must lie in [0, 1], got ${alpha}`);
  const { width, height } = image;
  const unit = normalised(resizeMap(map, mapWidth, mapHeight, width, height), options.range);
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const colour = jet(unit[i]);
    const base = rgbAt(image, i);
    for (let c = 0; c < 3; c++) data[3 * i + c] = Math.round((1 - alpha) * base[c] + alpha * colour[c]);
  }
  return { width, height, channels: 3, data };
}

export async function writeGrayPreview(file: string, map: Float32Array, width: number, height: number, options: MapPreviewOptions = {}): Promise<void> {
  await writePng(file, grayPreview(map, width, height, options));
}

export async function writeJetOverlay(file: string, map: Float32Array, mapWidth: number, mapHeight: number, image: RawImage, options: OverlayOptions = {}): Promise<void> {
  await writePng(file, jetOverlay(map, mapWidth, mapHeight, image, options));
}
