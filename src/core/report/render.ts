/**
 * Vega-Lite spec → Vega spec → SVG (vega's headless View, no canvas: text
 * widths are estimated) → PNG (sharp's librsvg, which needs a font through
 * fontconfig; `.ci/run` installs fonts-dejavu-core).
 */
import sharp from 'sharp';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';

export interface RenderedChart {
  /** The compiled Vega spec. */
  vega: Record<string, unknown>;
  svg: string;
  png: Buffer;
  /** Warnings of vega-lite's compiler and vega's runtime. */
  warnings: string[];
}

/** A vega logger that collects warnings and errors instead of printing them. */
function collectingLogger(warnings: string[]) {
  let level = vega.Warn;
  const logger = {
    level(value?: number) {
      if (value === undefined) return level;
      level = value;
      return logger;
    },
    error(...args: readonly unknown[]) {
      warnings.push(args.map(String).join(' '));
      return logger;
    },
    warn(...args: readonly unknown[]) {
      if (level >= vega.Warn) warnings.push(args.map(String).join(' '));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  return logger;
}

/** Renders a Vega-Lite spec with inline data; PNG at `scale` times the SVG's size. */
export async function renderChart(spec: Record<string, unknown>, scale = 2): Promise<RenderedChart> {
  const warnings: string[] = [];
  const logger = collectingLogger(warnings);
  const compiled = vegaLite.compile(spec as unknown as vegaLite.TopLevelSpec, { logger }).spec as unknown as Record<string, unknown>;
  const view = new vega.View(vega.parse(compiled as vega.Spec), { renderer: 'none', logger });
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg), { density: 72 * scale })
      .png({ compressionLevel: 9 })
      .toBuffer();
    return { vega: compiled, svg, png, warnings };
  } finally {
    view.finalize();
  }
}
