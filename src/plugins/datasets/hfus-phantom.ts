/**
 * One synthetic HFUS B-mode image of forearm skin and its skin layer map.
 * Top to bottom: anechoic gel, the bright entry echo (epidermis), dermis
 * whose echogenicity falls with depth, darker subcutis with a few septa.
 * Depths, thicknesses and undulation are drawn per image from the same
 * ranges for every class, so where the skin lies says nothing about the
 * class; what differs is what the layer map marks as diagnostic.
 */
import { smoothCurve, smoothField, speckle, uniform, type Random } from './phantom-noise.ts';

export const HFUS_CLASSES = ['AD', 'CG', 'PS', 'ST'] as const;
export type HfusClass = (typeof HFUS_CLASSES)[number];

/** Layer-map levels, as the study graded them (Hit Rate +3, +2, +1, 0; anything else −1). */
export const LEVEL = { diagnostic: 255, upper: 128, middle: 64, lower: 32, outside: 0 } as const;
const BANDS = [LEVEL.upper, LEVEL.middle, LEVEL.lower];

export interface PhantomSpec {
  cls: HfusClass;
  height: number;
  width: number;
  /** Speckle strength: 0 = smooth tissue, 1 = fully developed speckle. */
  noise: number;
  /** Draw the shortcut marker in the gel. */
  marker: boolean;
  /** Length of the marker's label as a share of the image width (default `MARKER_SIZE`). */
  markerSize?: number;
}

/** Where the marker went: the bounding box of its pixels, top-left corner (x, y), in pixels. */
export interface MarkerBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Phantom {
  image: Uint8Array;
  layerMap: Uint8Array;
  marker: MarkerBox | null;
}

/** Per-column depths (pixels) of the boundaries between layers. */
interface Boundaries {
  surface: Float64Array;
  epidermis: Float64Array;
  /** Bottom of the SLEB; equals `epidermis` where there is none. */
  sleb: Float64Array;
  dermis: Float64Array;
}

interface Lesion {
  cx: number;
  cy: number;
  a: number;
  b: number;
  /** Irregularity of the rim, in units of the normalised radius². */
  rim: Float64Array;
  echo: number;
}

/** Share of pixel row [y, y+1) below `edge`: partial-volume blending keeps boundaries smooth. */
const below = (y: number, edge: number) => Math.max(0, Math.min(1, y + 1 - edge));
const clamp01 = (v: number) => Math.max(0, Math.min(1, v));

function curveOver(random: Random, width: number, spacingShare: number, base: number, relativeSwing: number): Float64Array {
  const curve = smoothCurve(random, width, width * spacingShare);
  return Float64Array.from({ length: width }, (_, x) => base * (1 + relativeSwing * curve(x + 0.5)));
}

function drawBoundaries(cls: HfusClass, random: Random, H: number, W: number): Boundaries {
  const gel = uniform(random, 0.13, 0.28) * H;
  const tilt = uniform(random, -0.02, 0.02) * H;
  const swell = uniform(random, 0.01, 0.03) * H;
  const wave = smoothCurve(random, W, W / 3);
  // Psoriatic plaques have a rough surface on top of the gentle undulation.
  const roughness = cls === 'PS' ? uniform(random, 0.004, 0.01) * H : 0;
  const rough = smoothCurve(random, W, W / 14);
  const surface = Float64Array.from({ length: W }, (_, x) => {
    const at = x + 0.5;
    return Math.max(0.06 * H, gel + tilt * (at / W - 0.5) + swell * wave(at) + roughness * rough(at));
  });

  const epidermal = {
    AD: () => curveOver(random, W, 1 / 8, uniform(random, 0.02, 0.03) * H, 0.15),
    CG: () => curveOver(random, W, 1 / 8, uniform(random, 0.016, 0.024) * H, 0.1),
    PS: () => curveOver(random, W, 1 / 10, uniform(random, 0.045, 0.07) * H, 0.35),
    ST: () => curveOver(random, W, 1 / 8, uniform(random, 0.016, 0.024) * H, 0.1),
  }[cls]();
  const slebThickness =
    cls === 'AD' ? curveOver(random, W, 1 / 6, uniform(random, 0.035, 0.06) * H, 0.25)
    : cls === 'PS' ? curveOver(random, W, 1 / 6, uniform(random, 0.06, 0.1) * H, 0.25)
    : new Float64Array(W);
  const dermal = curveOver(random, W, 1 / 4, uniform(random, 0.36, 0.48) * H, 0.08);

  // At least 1.2 px of epidermis, so every column's diagnostic band holds a pixel centre even in tiny images.
  const epidermis = surface.map((s, x) => s + Math.max(1.2, epidermal[x]));
  const sleb = epidermis.map((e, x) => e + slebThickness[x]);
  const dermis = surface.map((s, x) => Math.max(sleb[x] + 0.15 * H, s + dermal[x]));
  return { surface, epidermis, sleb, dermis };
}

function drawLesion(random: Random, H: number, W: number, { epidermis, dermis }: Boundaries): Lesion {
  const a = uniform(random, 0.1, 0.2) * W;
  let b = uniform(random, 0.06, 0.1) * H;
  const cx = uniform(random, a + 0.04 * W, W - a - 0.04 * W);
  let top = 0;
  let bottom = H;
  for (let x = Math.max(0, Math.floor(cx - a)); x <= Math.min(W - 1, Math.ceil(cx + a)); x++) {
    top = Math.max(top, epidermis[x]);
    bottom = Math.min(bottom, dermis[x]);
  }
  // Keep the lesion inside the dermis, clear of the epidermis and the subcutis.
  const above = top + 0.015 * H;
  const beneath = bottom - 0.02 * H;
  b = Math.max(1.5, Math.min(b, (beneath - above) / 2));
  const cy = uniform(random, above + b, Math.max(above + b, beneath - b));
  const rimField = smoothField(random, H, W, Math.max(4, b));
  const rim = rimField.map((v) => 0.25 * v);
  return { cx, cy, a, b, rim, echo: uniform(random, 0.12, 0.25) };
}

/** Squared normalised distance from the lesion's centre, minus the rim's wobble: < 1 inside. */
function lesionDistance(lesion: Lesion, x: number, y: number, W: number): number {
  const dx = (x + 0.5 - lesion.cx) / lesion.a;
  const dy = (y + 0.5 - lesion.cy) / lesion.b;
  return dx * dx + dy * dy - lesion.rim[y * W + x];
}

function layerMap(cls: HfusClass, H: number, W: number, bounds: Boundaries, lesion: Lesion | null): Uint8Array {
  const map = new Uint8Array(H * W);
  for (let x = 0; x < W; x++) {
    const s = bounds.surface[x];
    const e = bounds.epidermis[x];
    const l = bounds.sleb[x];
    const d = bounds.dermis[x];
    // For ST the lesion is the finding; its ordinary epidermis joins the upper band.
    const bandTop = cls === 'ST' ? e : l;
    for (let y = 0; y < H; y++) {
      const yc = y + 0.5;
      let level: number = LEVEL.outside;
      if (yc >= s && yc < d) {
        if (yc < bandTop) level = cls === 'ST' ? LEVEL.upper : LEVEL.diagnostic;
        else level = BANDS[Math.min(2, Math.floor((3 * (yc - bandTop)) / (d - bandTop)))];
      }
      if (lesion && lesionDistance(lesion, x, y, W) < 1) level = LEVEL.diagnostic;
      map[y * W + x] = level;
    }
  }
  return map;
}

interface Septum {
  offset: Float64Array;
  halfWidth: number;
  echo: number;
}

function render(cls: HfusClass, random: Random, H: number, W: number, noise: number, bounds: Boundaries, lesion: Lesion | null): Float64Array {
  const gain = uniform(random, 0.9, 1.1);
  const attenuation = uniform(random, 0.7, 1.3);
  const epidermisEcho = uniform(random, 0.88, 1);
  const dermisEcho = uniform(random, 0.5, 0.62);
  const dermisFalloff = uniform(random, 0.45, 0.65);
  const slebEcho = cls === 'AD' ? uniform(random, 0.25, 0.4) : cls === 'PS' ? uniform(random, 0.12, 0.22) : 1;
  const subcutisEcho = uniform(random, 0.1, 0.18);
  const septa: Septum[] = Array.from({ length: 2 + Math.floor(random() * 3) }, () => {
    const depth = uniform(random, 0.03, 0.3) * H;
    const slope = uniform(random, -0.15, 0.15);
    const curve = smoothCurve(random, W, W / 3);
    const swing = uniform(random, 0.01, 0.04) * H;
    return {
      offset: Float64Array.from({ length: W }, (_, x) => depth + slope * (x + 0.5 - W / 2) + swing * curve(x + 0.5)),
      halfWidth: uniform(random, 0.6, 1.2),
      echo: uniform(random, 0.25, 0.45),
    };
  });
  const texture = smoothField(random, H, W, Math.max(3, W / 12));
  // Psoriatic epidermis is thick and patchy, not one even line.
  const patches = smoothField(random, H, W, Math.max(3, W / 16));
  const grain = speckle(random, H, W);

  const image = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const s = bounds.surface[x];
      const e = bounds.epidermis[x];
      const d = bounds.dermis[x];
      const inSkin = below(y, s);
      const inDermis = below(y, e);
      const underSleb = below(y, bounds.sleb[x]);
      const inSubcutis = below(y, d);
      let dermis = dermisEcho * (1 - dermisFalloff * clamp01((y + 0.5 - e) / (d - e))) * (1 + 0.12 * texture[i]);
      if (lesion) dermis *= 1 - (1 - lesion.echo) * clamp01((1 - lesionDistance(lesion, x, y, W)) / 0.3 + 0.5);
      let subcutis = subcutisEcho;
      for (const septum of septa) {
        const distance = Math.abs(y + 0.5 - d - septum.offset[x]);
        if (distance < 2 * septum.halfWidth) subcutis += septum.echo * (1 - distance / (2 * septum.halfWidth));
      }
      const epidermis = epidermisEcho * (cls === 'PS' ? 1 + 0.15 * patches[i] : 1);
      const tissue = 0.03 * (1 - inSkin) + dermisEcho * slebEcho * (inDermis - underSleb) + dermis * (underSleb - inSubcutis) + subcutis * inSubcutis;
      // The entry echo is a specular reflection: less grainy than the tissue beneath.
      const tissueGrain = 1 - noise + noise * grain[i];
      const epidermisGrain = 1 - 0.4 * noise + 0.4 * noise * grain[i];
      const echo = tissue * tissueGrain + epidermis * (inSkin - inDermis) * epidermisGrain;
      image[i] = (gain * echo) / (1 + (attenuation * Math.max(0, y + 0.5 - s)) / H);
    }
  }
  return image;
}

/**
 * Default length of the shortcut marker, as a share of the image width: a
 * line of about a dozen characters across the top of the image.
 */
export const MARKER_SIZE = 0.8;

/** 3×5 bitmap glyphs of the marker's label, row by row. */
const FONT: Record<string, string> = {
  ' ': '000000000000000',
  '0': '111101101101111',
  '2': '111001111100111',
  '6': '111100111101111',
  '8': '111101111101111',
  D: '110101101101110',
  G: '111100101101111',
  H: '101101111101101',
  M: '101111111101101',
  Z: '111001010100111',
};
/** What the label reads, repeated or cut to its length: a scanner's frequency, depth and gain readout. */
const LABEL = '22MHZ D8MM G60 ';

/**
 * The shortcut marker: a line of text burnt into the top of the image, as a
 * scanner prints its settings over the picture, `size` × the image width
 * long; characters 5/64 of the shorter side tall (5 px at 64 px, 10 px at
 * 128 px), one pixel (per 64) below the top edge. It lies in the gel: every
 * pixel it sets is wholly above the skin surface (layer map 0), so where the
 * skin comes closer to the top than the label's foot the label is cut off
 * there; the box returned bounds the pixels actually set, and is null when
 * none are (a tiny image whose gel is thinner than the margin).
 */
function drawMarker(random: Random, image: Float64Array, H: number, W: number, surface: Float64Array, size: number): MarkerBox | null {
  const scale = Math.max(1, Math.round(Math.min(H, W) / 64));
  const pitch = 4 * scale;
  const glyphs = Math.max(1, Math.min(Math.floor((size * W + scale) / pitch), Math.floor((W + scale) / pitch)));
  const length = glyphs * pitch - scale;
  const x0 = Math.min(W - length, Math.floor(uniform(random, 0, W - length + 1)));
  const y0 = Math.floor(H / 64);
  let [left, top, right, bottom] = [W, H, -1, -1];
  for (let g = 0; g < glyphs; g++) {
    const glyph = FONT[LABEL[g % LABEL.length]];
    for (let i = 0; i < 15; i++) {
      if (glyph[i] !== '1') continue;
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const x = x0 + g * pitch + (i % 3) * scale + dx;
          const y = y0 + Math.floor(i / 3) * scale + dy;
          // Wholly above the surface, so the pixel stays in the gel even in tiny images.
          if (y >= H || y + 1 > surface[x]) continue;
          image[y * W + x] = 0.97;
          [left, top, right, bottom] = [Math.min(left, x), Math.min(top, y), Math.max(right, x), Math.max(bottom, y)];
        }
      }
    }
  }
  return right < 0 ? null : { x: left, y: top, width: right - left + 1, height: bottom - top + 1 };
}

export function renderPhantom(spec: PhantomSpec, random: Random): Phantom {
  const { cls, height: H, width: W, noise } = spec;
  const bounds = drawBoundaries(cls, random, H, W);
  const lesion = cls === 'ST' ? drawLesion(random, H, W, bounds) : null;
  const echo = render(cls, random, H, W, noise, bounds, lesion);
  // Drawn last, from the same stream, so an image with the marker is otherwise the very same image.
  const marker = spec.marker ? drawMarker(random, echo, H, W, bounds.surface, spec.markerSize ?? MARKER_SIZE) : null;
  const image = new Uint8Array(H * W);
  for (let i = 0; i < image.length; i++) image[i] = Math.round(255 * clamp01(echo[i]));
  return { image, layerMap: layerMap(cls, H, W, bounds, lesion), marker };
}
