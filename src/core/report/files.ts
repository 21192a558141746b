/** What a report artifact holds (light on imports: the sweep's publishing step reads it without loading vega). */
export const REPORT_FILES = {
  html: 'report.html',
  /** Vega-Lite spec, Vega spec, SVG and PNG of each chart. */
  charts: 'charts',
  /** Gallery pictures the page refers to. */
  gallery: 'gallery',
  /** The verdicts, one row per model (json + csv). */
  decision: 'decision',
  /** What each explainer's maps say, per model (json + csv). */
  findings: 'decision-by-explainer',
} as const;
