/**
 * Random building blocks of the HFUS phantoms: smooth curves, smooth fields
 * and speckle. Only +, −, ×, ÷ and sqrt (all exactly rounded in IEEE 754) on
 * draws from the seeded PRNG, so the same seed gives the same bits on every
 * machine — no sin, exp or log, whose last bits may differ between engines.
 */

import { mixSeed } from '../../core/random.ts';

export type Random = () => number;

export { mixSeed };

export const uniform = (random: Random, low: number, high: number) => low + (high - low) * random();

/** Catmull–Rom through knots in [-1, 1] spaced `spacing` apart: a smooth wavy curve over 0…length. */
export function smoothCurve(random: Random, length: number, spacing: number): (x: number) => number {
  const step = Math.max(1, spacing);
  const knots = Array.from({ length: Math.ceil(length / step) + 4 }, () => random() * 2 - 1);
  return (x: number) => {
    const u = x / step;
    const i = Math.max(0, Math.min(knots.length - 4, Math.floor(u)));
    const t = u - i;
    const [p0, p1, p2, p3] = [knots[i], knots[i + 1], knots[i + 2], knots[i + 3]];
    const t2 = t * t;
    return 0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2 + (3 * p1 - p0 - 3 * p2 + p3) * t2 * t);
  };
}

/** A smooth 2-D field in [-1, 1]: random values on a coarse grid, bilinearly interpolated. */
export function smoothField(random: Random, height: number, width: number, cell: number): Float64Array {
  const rows = Math.ceil(height / cell) + 2;
  const cols = Math.ceil(width / cell) + 2;
  const grid = new Float64Array(rows * cols);
  for (let i = 0; i < grid.length; i++) grid[i] = random() * 2 - 1;
  const field = new Float64Array(height * width);
  for (let y = 0; y < height; y++) {
    const v = y / cell;
    const r = Math.floor(v);
    const fy = v - r;
    for (let x = 0; x < width; x++) {
      const u = x / cell;
      const c = Math.floor(u);
      const fx = u - c;
      const top = grid[r * cols + c] * (1 - fx) + grid[r * cols + c + 1] * fx;
      const bottom = grid[(r + 1) * cols + c] * (1 - fx) + grid[(r + 1) * cols + c + 1] * fx;
      field[y * width + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return field;
}

/**
 * Speckle with mean 1: the envelope |I + iQ| of a complex Gaussian field
 * (Rayleigh-distributed, as fully developed ultrasound speckle is), blurred
 * a little first so grains span a couple of pixels, wider laterally than
 * axially like a real transducer's point-spread function.
 */
export function speckle(random: Random, height: number, width: number): Float64Array {
  const inPhase = blurredNoise(random, height, width);
  const quadrature = blurredNoise(random, height, width);
  const envelope = new Float64Array(height * width);
  let sum = 0;
  for (let i = 0; i < envelope.length; i++) {
    envelope[i] = Math.sqrt(inPhase[i] * inPhase[i] + quadrature[i] * quadrature[i]);
    sum += envelope[i];
  }
  const mean = sum / envelope.length || 1;
  for (let i = 0; i < envelope.length; i++) envelope[i] /= mean;
  return envelope;
}

/**
 * White noise blurred by [1 2 3 2 1] across and [1 2 1] down (borders
 * clamped). The blur sums 15 draws, so uniform draws come out close enough
 * to Gaussian; the scale is irrelevant, speckle normalises it.
 */
function blurredNoise(random: Random, height: number, width: number): Float64Array {
  const raw = new Float64Array(height * width);
  for (let i = 0; i < raw.length; i++) raw[i] = random() - 0.5;
  const across = new Float64Array(raw.length);
  const last = width - 1;
  for (let y = 0; y < height; y++) {
    const row = y * width;
    for (let x = 0; x < width; x++) {
      const left2 = raw[row + (x > 1 ? x - 2 : 0)];
      const left1 = raw[row + (x > 0 ? x - 1 : 0)];
      const right1 = raw[row + (x < last ? x + 1 : last)];
      const right2 = raw[row + (x < last - 1 ? x + 2 : last)];
      across[row + x] = left2 + 2 * left1 + 3 * raw[row + x] + 2 * right1 + right2;
    }
  }
  const down = new Float64Array(raw.length);
  for (let y = 0; y < height; y++) {
    const up = Math.max(0, y - 1) * width;
    const here = y * width;
    const next = Math.min(height - 1, y + 1) * width;
    for (let x = 0; x < width; x++) down[here + x] = across[up + x] + 2 * across[here + x] + across[next + x];
  }
  return down;
}
