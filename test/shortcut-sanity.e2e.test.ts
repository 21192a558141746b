/**
 * The scientific sanity check of issue 7, end to end through `salgrid run`:
 * a small-cnn trained on synthetic-hfus where every ST image carries the
 * shortcut marker (a line of text burnt into the top of the image, in the
 * gel, outside every layer; `shortcut.size` 0.8: 51 × 5 px at 64 px) looks
 * at the marker, so Grad-CAM leaves the skin for the gel: against the same
 * network trained on the same images without the marker, its Hit Rate and
 * its coverage of the diagnostic (255) region drop and its background
 * coverage (the mean of the map outside every layer) rises.
 *
 * Two sweeps (with and without the shortcut; otherwise identical: the marker
 * is drawn last, so the images are the same pixels elsewhere), run side by
 * side: 30 images per class at 64×64, one fold of three (40 test images, 10
 * of them ST), 8 epochs. Seeds 1–7 run by hand (ST = the marked class;
 * clean → shortcut; accuracy over the 40 test images):
 *
 *   seed | ST graded Hit Rate | all images    | ST top coverage | ST background | all background | accuracy
 *   1    | 1.6 → −1.0         | 2.00 → 0.63   | 0.351 → 0.125   | 0.218 → 0.280 | 0.201 → 0.251  | 0.800 → 1.000
 *   2    | 1.2 → −0.1         | 1.53 → 0.55   | 0.618 → 0.273   | 0.223 → 0.249 | 0.200 → 0.242  | 0.850 → 1.000
 *   3    | 0.2 → −0.7         | 0.75 → −0.05  | 0.420 → 0.169   | 0.280 → 0.272 | 0.250 → 0.234  | 0.750 → 1.000
 *   4    | 2.0 → 0.2          | 2.18 → 1.03   | 0.324 → 0.183   | 0.147 → 0.255 | 0.168 → 0.232  | 0.875 → 1.000
 *   5    | 1.7 → −0.1         | 1.53 → 0.60   | 0.587 → 0.217   | 0.229 → 0.248 | 0.223 → 0.230  | 0.825 → 0.975
 *   6    | 2.0 → −0.1         | 2.00 → 0.70   | 0.628 → 0.183   | 0.287 → 0.255 | 0.208 → 0.245  | 0.900 → 1.000
 *   7    | 2.0 → −0.4         | 1.73 → 1.00   | 0.730 → 0.208   | 0.227 → 0.251 | 0.266 → 0.225  | 0.750 → 1.000
 *
 * The test runs seed 4 and asserts, at half the smallest change seen: an ST
 * Hit Rate drop of at least 0.45 (smallest 0.9), a Hit Rate drop over all
 * test images of at least 0.35 (smallest 0.73), and an ST top-coverage drop
 * of at least 0.07 (smallest 0.14). Background coverage on ST is asserted in
 * direction only: it rose in five seeds (by 0.019 to 0.109) but fell in two
 * (3: −0.007, 6: −0.033), so no margin holds across seeds. The shortcut map
 * fills the gel (coverage 0.65–0.70 there) and nothing else, so its
 * background is capped near the gel's share of the outside region (about
 * 850 of 2,400 px at 64×64; the rest is the deep tissue below the dermis):
 * 0.25–0.28. Where the clean map already spills into the deep tissue that
 * much (seed 3: 0.185 there, a model that calls every CG image ST; seed 6:
 * 0.258), no marker confined to the gel can raise the mean.
 *
 * Why ST and a long label: with 8-px Grad-CAM cells at 64×64 and a gel 8–18
 * px deep, anything lighting the gel also lights the entry echo beneath it,
 * which is CG's, AD's and PS's diagnostic region but not ST's (its region is
 * the lesion inside the dermis). Marking CG, a label wide enough to raise the
 * background raises CG's top coverage too; and a compact marker (the former
 * 3-px "+", or one character) makes one small blob whose mean over the
 * outside region is below the clean map's spill into the gel, so background
 * coverage fell with it in every seed.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { cliAsync, tempDir } from './helpers.ts';

const SEED = 4;
const MARKED = 'ST';
const MARKER_SIZE = 0.8;

function manifest(name: string, shortcut: boolean): string {
  return `name: ${name}
dataset:
  source: synthetic-hfus
  params: { perClass: 30, size: 64, seed: ${SEED}${shortcut ? `, shortcut: { probability: 1, classes: [${MARKED}], size: ${MARKER_SIZE} }` : ''} }
  imageSize: [64, 64]
folds: { k: 3, seed: 1, only: [1], validation: 0.15 }
training: { epochs: 8, batchSize: 8, seed: ${SEED}, optimizer: { adam: { learningRate: 0.001 } } }
models:
  - small-cnn
explainers:
  - gradcam
metrics:
  - hit-rate
  - layer-coverage
  - confidence-change
  - { id: deletion, params: { steps: 8 } }
execution: { backend: wasm, workers: { gpu: 1, cpu: 1 } }
`;
}

interface SummaryRow {
  metric: string;
  measure: string;
  class?: string;
  mean: number | null;
  n: number;
}

async function sweep(name: string, shortcut: boolean): Promise<{ all: SummaryRow[]; byClass: SummaryRow[]; accuracy: number }> {
  const dir = tempDir(`salgrid-sanity-${name}-`);
  writeFileSync(path.join(dir, 'sweep.yaml'), manifest(name, shortcut));
  const result = await cliAsync(['run', 'sweep.yaml'], dir).done;
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const results = path.join(dir, 'runs', name, 'results');
  const read = <T = SummaryRow[]>(file: string) => JSON.parse(readFileSync(path.join(results, file), 'utf8')) as T;
  const [{ accuracy }] = read<{ accuracy: number }[]>('classification.json');
  return { all: read('summary.json'), byClass: read('summary-by-class.json'), accuracy };
}

function mean(rows: SummaryRow[], metric: string, measure: string, cls?: string): number {
  const row = rows.find((r) => r.metric === metric && r.measure === measure && (cls === undefined || r.class === cls));
  assert.ok(row && typeof row.mean === 'number', `no mean for ${metric}/${measure}${cls ? ` of class ${cls}` : ''}`);
  return row.mean;
}

describe('shortcut sanity check (issue 7)', () => {
  it('a small-cnn trained with a class-correlated marker in the gel gets a clearly lower Grad-CAM Hit Rate and top coverage and a higher background coverage', { timeout: 600_000 }, async () => {
    const [clean, shortcut] = await Promise.all([sweep('clean', false), sweep('shortcut', true)]);
    const figures = {
      markedHitRate: [mean(clean.byClass, 'hit-rate', 'graded', MARKED), mean(shortcut.byClass, 'hit-rate', 'graded', MARKED)],
      allHitRate: [mean(clean.all, 'hit-rate', 'graded'), mean(shortcut.all, 'hit-rate', 'graded')],
      markedTop: [mean(clean.byClass, 'layer-coverage', 'top', MARKED), mean(shortcut.byClass, 'layer-coverage', 'top', MARKED)],
      markedBackground: [mean(clean.byClass, 'layer-coverage', 'background', MARKED), mean(shortcut.byClass, 'layer-coverage', 'background', MARKED)],
      allBackground: [mean(clean.all, 'layer-coverage', 'background'), mean(shortcut.all, 'layer-coverage', 'background')],
      accuracy: [clean.accuracy, shortcut.accuracy],
    };
    console.log(`seed ${SEED}, clean → shortcut: ${Object.entries(figures).map(([k, [a, b]]) => `${k} ${a.toFixed(3)} → ${b.toFixed(3)}`).join('; ')}`);
    const [cleanMarked, shortcutMarked] = figures.markedHitRate;
    assert.ok(cleanMarked - shortcutMarked >= 0.45, `Hit Rate on the marked class: ${cleanMarked} clean, ${shortcutMarked} with the shortcut`);
    assert.ok(figures.allHitRate[0] - figures.allHitRate[1] >= 0.35, `Hit Rate over all test images: ${figures.allHitRate.join(' → ')}`);
    assert.ok(figures.markedTop[0] - figures.markedTop[1] >= 0.07, `top-layer coverage on the marked class: ${figures.markedTop.join(' → ')}`);
    assert.ok(figures.markedBackground[1] > figures.markedBackground[0], `background coverage on the marked class: ${figures.markedBackground.join(' → ')}`);

    // The perturbation metrics ran in the same sweeps (tensor tasks): one value per test image, in range.
    for (const { all } of [clean, shortcut]) {
      const relativeDrop = all.find((r) => r.metric === 'confidence-change' && r.measure === 'relativeDrop');
      assert.equal(relativeDrop?.n, 40);
      assert.ok(relativeDrop.mean! >= 0 && relativeDrop.mean! <= 1);
      const increase = all.find((r) => r.metric === 'confidence-change' && r.measure === 'increase');
      assert.ok(increase && increase.mean! >= 0 && increase.mean! <= 1, 'increase averages as a 0/1 share');
      const auc = all.find((r) => r.metric.startsWith('deletion') && r.measure === 'auc');
      assert.equal(auc?.n, 40);
      assert.ok(auc.mean! > 0 && auc.mean! < 1);
    }
  });
});
