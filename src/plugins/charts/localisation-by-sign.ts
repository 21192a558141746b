/**
 * The study's localisation results split into positive attributions (darker)
 * and negative attributions (lighter): Hit Rate of the explainer variants
 * that differ only in their `sign` param.
 */
import { measureOrder } from './localisation-by-method.ts';
import { METRICS, SIGN_PARAM, defineChart, distinct, errorBar, metricRows, num, order, specHead, variants } from './data.ts';

const SIGNS = ['positive', 'negative'];

/** An explainer label without its sign: `saliency[sign=negative,steps=5]` → `saliency[steps=5]`. */
export function withoutSign(label: string): string {
  const bracket = /^(.*)\[(.*)\]$/.exec(label);
  if (!bracket) return label;
  const rest = bracket[2].split(',').filter((part) => !part.startsWith(`${SIGN_PARAM}=`));
  return rest.length > 0 ? `${bracket[1]}[${rest.join(',')}]` : bracket[1];
}

export const localisationBySign = defineChart({
  id: 'localisation-by-sign',
  version: '1',
  rank: 20,
  description: 'Hit Rate of positive (darker) and negative (lighter) attributions per method and model, for explainers run with sign: positive and sign: negative.',
  spec(tables) {
    const signOf = new Map(
      variants(tables, 'explainer')
        .filter((v) => SIGNS.includes(String(v.params[SIGN_PARAM])))
        .map((v) => [v.label, String(v.params[SIGN_PARAM])]),
    );
    if (signOf.size === 0) return null;
    const rows = metricRows(tables, METRICS.hitRate.id).filter((r) => signOf.has(String(r.explainer)) && (METRICS.hitRate.measures as readonly string[]).includes(String(r.measure)) && num(r.mean) !== null);
    if (rows.length === 0) return null;
    const variantCount = distinct(rows.map((r) => r.variant.label)).length;
    const values = rows.map((r) => ({
      model: String(r.model),
      method: withoutSign(String(r.explainer)),
      explainer: String(r.explainer),
      sign: signOf.get(String(r.explainer))!,
      measure: variantCount > 1 ? `${r.measure} (${r.metric})` : String(r.measure),
      mean: num(r.mean),
      sd: num(r.sd),
      ...errorBar(num(r.mean)!, num(r.sd)),
    }));
    const models = order(tables, 'architecture', values.map((v) => v.model));
    const methods = distinct(order(tables, 'explainer', values.map((v) => v.explainer)).map(withoutSign));
    const x = { field: 'method', type: 'nominal', sort: methods, title: null, axis: { labelAngle: -40 } };
    const xOffset = { field: 'sign', type: 'nominal', sort: SIGNS };
    return {
      ...specHead('Hit Rate of positive and negative attributions', 'darker: positive, lighter: negative; mean over folds, error bars ± sd over folds'),
      data: { values },
      facet: {
        row: { field: 'measure', type: 'nominal', title: 'Hit Rate', sort: measureOrder(values.map((v) => v.measure)) },
        column: { field: 'model', type: 'nominal', sort: models, title: null },
      },
      resolve: { scale: { y: 'independent' } },
      spec: {
        width: { step: 30 },
        height: 160,
        layer: [
          {
            mark: { type: 'bar', tooltip: true },
            encoding: {
              x,
              xOffset,
              y: { field: 'mean', type: 'quantitative', title: 'mean' },
              color: { field: 'sign', type: 'nominal', scale: { domain: SIGNS, range: ['#1f5f8b', '#9ecae1'] }, title: 'attributions' },
              tooltip: [{ field: 'model' }, { field: 'explainer' }, { field: 'measure' }, { field: 'mean', format: '.3f' }, { field: 'sd', format: '.3f' }],
            },
          },
          { mark: { type: 'rule', color: '#333' }, encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
        ],
      },
    };
  },
});
