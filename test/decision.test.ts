/**
 * The study's decision scheme on hand-made tables: the four verdicts, the
 * reliability qualifier, which explainers a model's focus comes from, and the
 * thresholds and metric choices of report.decision.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ResultRow } from '../src/core/plugins/types.ts';
import { DEFAULT_DECISION, decide, decisionRows, qualifier, type DecisionConfig } from '../src/core/report/decision.ts';

interface Maps {
  hit?: number;
  top?: number;
  background?: number;
  drop?: number;
  increase?: number;
}

const variant = (kind: string, label: string, id: string, params: Record<string, unknown> = {}): ResultRow => ({ kind, label, id, params: JSON.stringify(params) });

/** Result tables for models given as accuracy and, per explainer, the means the scheme reads. */
function tables(models: Record<string, { accuracy: number; explainers: Record<string, Maps> }>): Record<string, ResultRow[]> {
  const summary: ResultRow[] = [];
  const row = (model: string, explainer: string, metric: string, measure: string, mean: number | undefined) => {
    if (mean !== undefined) summary.push({ model, explainer, metric, measure, mean, sd: 0.1, folds: 3 });
  };
  for (const [model, { explainers }] of Object.entries(models)) {
    for (const [explainer, m] of Object.entries(explainers)) {
      row(model, explainer, 'hit-rate', 'graded', m.hit);
      row(model, explainer, 'hit-rate', 'binary', m.hit === undefined ? undefined : m.hit / 3);
      row(model, explainer, 'layer-coverage', 'top', m.top);
      row(model, explainer, 'layer-coverage', 'background', m.background);
      row(model, explainer, 'confidence-change[perturbation=darken]', 'drop', m.drop);
      row(model, explainer, 'confidence-change[perturbation=darken]', 'increase', m.increase);
      // A zero-perturbation variant whose numbers must not be taken for DiC / IiC.
      row(model, explainer, 'confidence-change[perturbation=zero]', 'drop@0.50', 0.99);
    }
  }
  return {
    variants: [
      variant('explainer', 'gradcam', 'gradcam'),
      variant('explainer', 'scorecam', 'scorecam'),
      variant('metric', 'hit-rate', 'hit-rate'),
      variant('metric', 'layer-coverage', 'layer-coverage'),
      variant('metric', 'confidence-change[perturbation=zero]', 'confidence-change', { perturbation: 'zero', cover: 'unimportant' }),
      variant('metric', 'confidence-change[perturbation=darken]', 'confidence-change', { perturbation: 'darken', cover: 'unimportant' }),
    ],
    'summary-over-folds': summary,
    'classification-summary': Object.entries(models).map(([model, { accuracy }]) => ({ model, accuracy, accuracySd: 0.02, folds: 3 })),
    'classification-by-class': Object.entries(models).flatMap(([model, { accuracy }]) => [
      { model, fold: 1, class: 'AD', recall: accuracy },
      { model, fold: 2, class: 'AD', recall: accuracy },
      { model, fold: 1, class: 'PS', recall: accuracy / 2 },
      { model, fold: 2, class: 'PS', recall: accuracy / 4 },
    ]),
  };
}

const reliable = { drop: 0.1, increase: 0.3 };
const unreliable = { drop: 0.8, increase: 0.0 };

describe('decision scheme', () => {
  it('gives each of the four verdicts, qualified by the reliability of the maps', () => {
    const result = decide(
      tables({
        trusted: { accuracy: 0.95, explainers: { gradcam: { hit: 2.5, top: 0.6, background: 0.1, ...reliable } } },
        overlearned: { accuracy: 0.95, explainers: { gradcam: { hit: 0.5, top: 0.2, background: 0.4, ...reliable } } },
        errors: { accuracy: 0.6, explainers: { gradcam: { hit: 2.5, top: 0.6, background: 0.1, ...unreliable } } },
        untrained: { accuracy: 0.6, explainers: { gradcam: { hit: -0.5, top: 0.3, background: 0.3, ...unreliable } } },
      }),
    )!;
    const byModel = Object.fromEntries(result.models.map((m) => [m.model, m]));
    assert.deepEqual(
      Object.fromEntries(result.models.map((m) => [m.model, [m.verdict, m.focus, m.reliability, m.accuracyHigh]])),
      {
        trusted: ['trusted', 'correct', 'high', true],
        overlearned: ['over-learned', 'elsewhere', 'high', true],
        errors: ['find-errors', 'correct', 'low', false],
        untrained: ['under-trained', 'elsewhere', 'low', false],
      },
    );
    assert.deepEqual(result.sources, { hitRate: 'hit-rate', coverage: 'layer-coverage', reliability: 'confidence-change[perturbation=darken]' });
    // The numbers behind a verdict.
    assert.equal(byModel.trusted.hitRate, 2.5);
    assert.ok(Math.abs(byModel.trusted.coverageRatio! - 6) < 1e-12);
    assert.equal(byModel.trusted.weakestClass, null);
    assert.deepEqual(byModel.errors.weakestClass, { class: 'PS', recall: (0.3 + 0.15) / 2 });
    const findings = result.explainers.filter((f) => f.model === 'errors');
    assert.deepEqual(
      findings.map((f) => [f.explainer, f.drop, f.increase, f.reliability]),
      [['gradcam', 0.8, 0, 'low']],
    );
    assert.match(qualifier(byModel.errors.reliability, byModel.errors.focus), /not reliable: despite values suggesting correct focus/);
    assert.match(qualifier(byModel.overlearned.reliability, byModel.overlearned.focus), /reliable: attention lies on an undesirable area/);
    assert.deepEqual(
      decisionRows(result).map((r) => r.verdict),
      ['trusted', 'over-learned', 'find-errors', 'under-trained'],
    );
  });

  it('takes a model’s focus from the explainers with reliable maps, or from all when none is reliable', () => {
    const result = decide(
      tables({
        mixed: { accuracy: 0.95, explainers: { gradcam: { hit: 2.6, top: 0.7, background: 0.1, ...reliable }, scorecam: { hit: 0, top: 0.1, background: 0.5, ...unreliable } } },
        none: { accuracy: 0.95, explainers: { gradcam: { hit: 2.6, top: 0.7, background: 0.1, ...unreliable }, scorecam: { hit: 0, top: 0.1, background: 0.5, ...unreliable } } },
      }),
    )!;
    const [mixed, none] = result.models;
    assert.deepEqual([mixed.basis, mixed.reliableExplainers, mixed.explainers, mixed.focus, mixed.verdict], [['gradcam'], 1, 2, 'correct', 'trusted']);
    assert.deepEqual([none.basis, none.reliableExplainers, none.reliability, none.hitRate, none.focus], [['gradcam', 'scorecam'], 0, 'low', 1.3, 'elsewhere']);
    assert.ok(Math.abs(none.coverageTop! - 0.4) < 1e-12 && Math.abs(none.coverageBackground! - 0.3) < 1e-12);
  });

  it('needs both criteria for correct focus; either alone decides when the other is absent', () => {
    const [both, hitOnly, coverageOnly] = decide(
      tables({
        both: { accuracy: 0.95, explainers: { gradcam: { hit: 2.5, top: 0.2, background: 0.3 } } },
        hitOnly: { accuracy: 0.95, explainers: { gradcam: { hit: 2.5 } } },
        coverageOnly: { accuracy: 0.95, explainers: { gradcam: { top: 0.5, background: 0 } } },
      }),
    )!.models;
    assert.equal(both.focus, 'elsewhere');
    assert.equal(hitOnly.focus, 'correct');
    // Attention on the top layer and none on the background passes whatever the ratio threshold.
    assert.deepEqual([coverageOnly.focus, coverageOnly.coverageRatio], ['correct', null]);
    for (const m of [both, hitOnly, coverageOnly]) assert.equal(m.reliability, 'unknown');
  });

  it('follows report.decision: thresholds, measures and the reliability variant', () => {
    const t = tables({ m: { accuracy: 0.8, explainers: { gradcam: { hit: 1.5, top: 0.5, background: 0.4, drop: 0.3, increase: 0.05 } } } });
    assert.equal(decide(t)!.models[0].verdict, 'under-trained');
    const lenient: DecisionConfig = {
      ...DEFAULT_DECISION,
      accuracy: 0.75,
      hitRate: { ...DEFAULT_DECISION.hitRate, min: 1 },
      coverage: { ...DEFAULT_DECISION.coverage, minRatio: 1.2 },
      reliability: { ...DEFAULT_DECISION.reliability, minIncrease: 0.01 },
    };
    const [m] = decide(t, lenient)!.models;
    assert.deepEqual([m.verdict, m.reliability], ['trusted', 'high']);
    // The binary Hit Rate (0.5 here) instead of the graded one.
    assert.equal(decide(t, { ...lenient, hitRate: { ...lenient.hitRate, measure: 'binary', min: 0.6 } })!.models[0].focus, 'elsewhere');
    // No variant with these params: reliability not measured.
    assert.equal(decide(t, { ...lenient, reliability: { ...lenient.reliability, params: { perturbation: 'darken', cover: 'important' } } })!.models[0].reliability, 'unknown');
  });

  it('is undecided without attention metrics, and absent without trained models', () => {
    const t = tables({ m: { accuracy: 0.95, explainers: { gradcam: { drop: 0.1, increase: 0.2 } } } });
    const [m] = decide(t)!.models;
    assert.deepEqual([m.verdict, m.focus, m.reliability], ['undecided', 'unknown', 'high']);
    assert.equal(qualifier(m.reliability, m.focus), '');
    assert.equal(decide({ 'classification-summary': [] }), null);
    assert.equal(decide({}), null);
  });
});
