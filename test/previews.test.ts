import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { readImage, type RawImage } from '../src/core/io/image-io.ts';
import { grayPreview, jet, jetOverlay, resizeMap, writeGrayPreview, writeJetOverlay } from '../src/core/tensor/previews.ts';
import { tempDir } from './helpers.ts';

const map = (...values: number[]) => Float32Array.from(values);

describe('JET colour map', () => {
  it('follows the piecewise-linear definition: dark blue, blue, cyan, yellow, red, dark red', () => {
    assert.deepEqual(jet(0), [0, 0, 128]);
    assert.deepEqual(jet(0.125), [0, 0, 255]);
    assert.deepEqual(jet(0.375), [0, 255, 255]);
    assert.deepEqual(jet(0.5), [128, 255, 128]);
    assert.deepEqual(jet(0.625), [255, 255, 0]);
    assert.deepEqual(jet(0.875), [255, 0, 0]);
    assert.deepEqual(jet(1), [128, 0, 0]);
  });

  it('clamps values outside [0, 1] and treats NaN as 0', () => {
    assert.deepEqual(jet(-3), jet(0));
    assert.deepEqual(jet(7), jet(1));
    assert.deepEqual(jet(Number.NaN), jet(0));
  });
});

describe('gray preview', () => {
  it('scales the map min–max to 0–255', () => {
    assert.deepEqual(Array.from(grayPreview(map(-1, 0, 1, 3), 2, 2).data), [0, 64, 128, 255]);
  });

  it('uses a given range, clamping values outside it', () => {
    assert.deepEqual(Array.from(grayPreview(map(-1, 0.5, 1, 3), 4, 1, { range: [0, 1] }).data), [0, 128, 255, 255]);
  });

  it('gives black for a flat map and for non-finite values', () => {
    assert.deepEqual(Array.from(grayPreview(map(2, 2, 2, 2), 2, 2).data), [0, 0, 0, 0]);
    assert.deepEqual(Array.from(grayPreview(map(0, Number.NaN, 1, Infinity), 2, 2).data), [0, 0, 255, 0]);
  });

  it('writes a one-channel PNG of the map size', async () => {
    const file = path.join(tempDir(), 'map.png');
    await writeGrayPreview(file, map(0, 1, 2, 3, 4, 5), 3, 2);
    const image = await readImage(file);
    assert.deepEqual([image.width, image.height, image.channels], [3, 2, 1]);
    assert.deepEqual(Array.from(image.data), [0, 51, 102, 153, 204, 255]);
  });

  it('refuses a map whose length does not match its size', () => {
    assert.throws(() => grayPreview(map(1, 2, 3), 2, 2), /3 values, not 2×2/);
  });
});

describe('resizeMap', () => {
  it('interpolates bilinearly with half-pixel centres', () => {
    assert.deepEqual(Array.from(resizeMap(map(0, 1), 2, 1, 4, 1)), [0, 0.25, 0.75, 1]);
    assert.deepEqual(Array.from(resizeMap(map(0, 4), 1, 2, 1, 4)), [0, 1, 3, 4]);
  });

  it('returns the map itself when the size already matches', () => {
    const m = map(1, 2, 3, 4);
    assert.equal(resizeMap(m, 2, 2, 2, 2), m);
  });
});

describe('JET overlay', () => {
  const gray: RawImage = { width: 2, height: 1, channels: 1, bitDepth: 8, data: Uint8Array.from([100, 200]) };

  it('blends (1 − alpha)·image + alpha·jet(map)', () => {
    const overlay = jetOverlay(map(0, 1), 2, 1, gray, { alpha: 0.25 });
    const expected = [0, 1].flatMap((v, i) => jet(v).map((c) => Math.round(0.75 * gray.data[i] + 0.25 * c)));
    assert.deepEqual(Array.from(overlay.data), expected);
    assert.deepEqual(Array.from(jetOverlay(map(0, 1), 2, 1, gray, { alpha: 0 }).data), [100, 100, 100, 200, 200, 200]);
    assert.deepEqual(Array.from(jetOverlay(map(0, 1), 2, 1, gray, { alpha: 1 }).data), [...jet(0), ...jet(1)]);
  });

  it('scales 16-bit images down and ignores alpha', () => {
    const rgba16: RawImage = { width: 1, height: 1, channels: 4, bitDepth: 16, data: Uint16Array.from([65535, 0, 257 * 100, 0]) };
    assert.deepEqual(Array.from(jetOverlay(map(5), 1, 1, rgba16, { alpha: 0 }).data), [255, 0, 100]);
  });

  it('resizes the map to the image and writes an RGB PNG of the image size', async () => {
    const image: RawImage = { width: 4, height: 4, channels: 3, bitDepth: 8, data: new Uint8Array(4 * 4 * 3).fill(50) };
    const file = path.join(tempDir(), 'overlay.png');
    await writeJetOverlay(file, map(0, 1, 0, 1), 2, 2, image, { alpha: 1 });
    const written = await readImage(file);
    assert.deepEqual([written.width, written.height, written.channels], [4, 4, 3]);
    // Left column is the map's low end, right column its high end.
    assert.deepEqual(Array.from(written.data.slice(0, 3)), jet(0));
    assert.deepEqual(Array.from(written.data.slice(9, 12)), jet(1));
  });

  it('refuses an alpha outside [0, 1]', () => {
    assert.throws(() => jetOverlay(map(0, 1), 2, 1, gray, { alpha: 1.5 }), /alpha must lie in \[0, 1\]/);
  });
});
