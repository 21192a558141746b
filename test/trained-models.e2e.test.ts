/**
 * Fold models trained outside salgrid (`trained:` on a model entry), through
 * the real CLI: a sweep trains small-cnn and a tiny MobileNetV2 on the three
 * folds of a kfold-folders dataset (synthetic phantoms, 32×32) and scores
 * Grad-CAM with hit-rate; its models leave salgrid as a researcher's would
 * arrive — MobileNetV2's as torchvision state dicts (`salgrid weights export
 * … .pth`), small-cnn's (which has no PyTorch counterpart) as tfjs model
 * folders and as ONNX files (`salgrid weights export … .onnx`) — and a
 * second sweep takes them in through `trained:`. It trains nothing, and its
 * predictions and scores are those of the sweep that trained the models.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { PlanFile } from '../src/core/sweep.ts';
import { cli, cliAsync, mistake, ok, tempDir } from './helpers.ts';

const FOLDS = [1, 2, 3];

/** `data/images/<class>/<class>-00n.png` from `salgrid synth` as k1..k3/{train,test}/<class>/<file>: image n is fold n's test image. */
function kfoldLayout(dir: string): void {
  const images = path.join(dir, 'data', 'images');
  for (const cls of readdirSync(images)) {
    for (const file of readdirSync(path.join(images, cls))) {
      const n = Number(/-(\d+)\.png$/.exec(file)![1]);
      for (const fold of FOLDS) {
        const to = path.join(dir, 'folds', `k${fold}`, fold === n ? 'test' : 'train', cls);
        mkdirSync(to, { recursive: true });
        cpSync(path.join(images, cls, file), path.join(to, file));
      }
    }
  }
}

const manifest = (name: string, models: string, extra = '') => `name: ${name}
dataset:
  source: kfold-folders
  params: { root: folds, layerMaps: data/layer-maps }
  imageSize: [32, 32]
folds: { k: 3 }
${extra}models:
${models}
explainers: [gradcam]
metrics: [hit-rate]
execution: { backend: onnx:cpu }
`;

const SMALL_CNN = 'id: small-cnn, params: { width: 4, blocks: 2 }';
const MOBILENET = 'id: mobilenet-v2, params: { widthMult: 0.1 }';

interface Score {
  model: string;
  fold: number;
  id: string;
  measure: string;
  value: number | null;
}
interface Prediction {
  model: string;
  fold: number;
  id: string;
  predicted: string;
  confidence: number;
}

const results = <T>(dir: string, sweep: string, table: string) => JSON.parse(readFileSync(path.join(dir, 'runs', sweep, 'results', `${table}.json`), 'utf8')) as T[];
const plan = (dir: string, sweep: string) => JSON.parse(readFileSync(path.join(dir, 'runs', sweep, 'plan.json'), 'utf8')) as PlanFile;

/** Rows by model (renamed by `as`), fold, image (and measure), to compare two sweeps' tables. */
function byCell<T extends { model: string; fold: number; id: string; measure?: string }>(rows: T[], as: Record<string, string>): Map<string, T> {
  return new Map(rows.filter((r) => r.model in as).map((r) => [`${as[r.model]} ${r.fold} ${r.id} ${r.measure ?? ''}`, r]));
}

describe('fold models trained elsewhere (trained:)', () => {
  it('scores models imported from .pth, tfjs and .onnx files as the sweep that trained them, training nothing', async () => {
    const dir = tempDir('salgrid-trained-e2e-');
    ok(cli(['synth', 'data', '--per-class', '3', '--size', '32', '--seed', '1'], dir));
    kfoldLayout(dir);
    writeFileSync(path.join(dir, 'here.yaml'), manifest('trained-here', `  - { ${SMALL_CNN} }\n  - { ${MOBILENET} }`, 'training: { epochs: 2, batchSize: 4, seed: 1 }\n'));
    writeFileSync(
      path.join(dir, 'elsewhere.yaml'),
      manifest(
        'trained-elsewhere',
        [
          `  - { ${SMALL_CNN}, trained: "exported/{model}/fold{fold}" }`,
          `  - { ${MOBILENET}, trained: "exported/{model}/fold{fold}.pth" }`,
          '  - { id: onnx, name: small-cnn-onnx, params: { normalize: imagenet }, trained: "exported/{model}/fold{fold}.onnx" }',
        ].join('\n'),
        // What training: says does not matter to imported models.
        'training: { epochs: 30 }\n',
      ),
    );

    // Before the files exist, the import sweep stops at plan time, pointing at the trained: field (run beside the training sweep).
    const [here, early] = await Promise.all([cliAsync(['run', 'here.yaml', '--only', 'aggregate'], dir).done, cliAsync(['run', 'elsewhere.yaml'], dir).done]);
    ok(here);
    mistake(early, /^salgrid: elsewhere\.yaml:9:64: \/models\/0\/trained: no trained model of small-cnn for fold 1 \(nor for folds 2, 3\): exported\/small-cnn\/fold1 \(.*\) does not exist; put each fold's model there, or fix the path\.$/);

    // The trained models leave salgrid: tfjs model folders as they are, and through salgrid weights export.
    const trainKey = (model: string, fold: number) => plan(dir, 'trained-here').tasks.find((t) => t.stage === 'train' && t.cell.model === model && t.cell.fold === fold)!.key;
    const artifact = (model: string, fold: number) => path.join('runs', 'cache', 'train', trainKey(model, fold));
    const exports: Promise<unknown>[] = [];
    for (const fold of FOLDS) {
      cpSync(path.join(dir, artifact('small-cnn', fold), 'model'), path.join(dir, 'exported', 'small-cnn', `fold${fold}`), { recursive: true });
      for (const folder of ['mobilenet-v2', 'small-cnn-onnx']) mkdirSync(path.join(dir, 'exported', folder), { recursive: true });
      exports.push(cliAsync(['weights', 'export', artifact('mobilenet-v2', fold), `exported/mobilenet-v2/fold${fold}.pth`], dir).done.then(ok));
      exports.push(cliAsync(['weights', 'export', artifact('small-cnn', fold), `exported/small-cnn-onnx/fold${fold}.onnx`], dir).done.then(ok));
    }
    await Promise.all(exports);

    const elsewhere = ok(cli(['run', 'elsewhere.yaml'], dir, {}, 600_000));
    assert.match(elsewhere.stdout, /done: import small-cnn fold 1/);
    assert.doesNotMatch(elsewhere.stdout, /\btrain (small-cnn|mobilenet-v2)|epoch/, 'nothing is trained');

    // Nothing trained: every train-stage task is an import, its artifact says of what, and there is no training history.
    const imports = plan(dir, 'trained-elsewhere').tasks.filter((t) => t.stage === 'train');
    assert.equal(imports.length, 9);
    for (const task of imports) {
      assert.match(task.label, /^import (small-cnn|mobilenet-v2|small-cnn-onnx) fold [123]$/);
      assert.equal('training' in (task.material.params as object), false);
      const folder = path.join(dir, 'runs', 'cache', 'train', task.key);
      const meta = JSON.parse(readFileSync(path.join(folder, 'meta.json'), 'utf8')) as { fold: number; imported: string };
      assert.deepEqual({ fold: meta.fold, imported: meta.imported }, { fold: task.cell.fold, imported: path.basename(path.resolve(dir, (task.material.params as { trained: string }).trained)) });
      assert.ok(existsSync(path.join(folder, 'model', 'salgrid-model.json')), 'the layout a train task writes');
      assert.ok(!existsSync(path.join(folder, 'history.json')));
    }
    assert.deepEqual(results(dir, 'trained-elsewhere', 'training'), []);
    assert.ok(existsSync(path.join(dir, 'runs', 'trained-elsewhere', 'report.html')));

    // The same predictions and scores: bit for bit from tfjs and .pth, within 1e-4 through the ONNX file.
    const same = { 'small-cnn': 'small-cnn', 'mobilenet-v2': 'mobilenet-v2' };
    const viaOnnx = { 'small-cnn-onnx': 'small-cnn' };
    const trainedHere = { scores: results<Score>(dir, 'trained-here', 'scores'), predictions: results<Prediction>(dir, 'trained-here', 'predictions') };
    const imported = { scores: results<Score>(dir, 'trained-elsewhere', 'scores'), predictions: results<Prediction>(dir, 'trained-elsewhere', 'predictions') };
    assert.equal(trainedHere.scores.length, 2 * 12 * new Set(trainedHere.scores.map((s) => s.measure)).size);
    assert.ok(trainedHere.scores.some((s) => s.value !== null), 'some map has a peak');
    assert.deepEqual(byCell(imported.scores, same), byCell(trainedHere.scores, same));
    assert.deepEqual(byCell(imported.predictions, same), byCell(trainedHere.predictions, same));
    const expected = byCell(trainedHere.scores, { 'small-cnn': 'small-cnn' });
    const throughOnnx = byCell(imported.scores, viaOnnx);
    assert.deepEqual([...throughOnnx.keys()].sort(), [...expected.keys()].sort());
    for (const [cell, score] of throughOnnx) {
      const want = expected.get(cell)!.value;
      assert.ok(score.value === want || (score.value !== null && want !== null && Math.abs(score.value - want) <= 1e-4), `${cell}: ${score.value} against ${want}`);
    }
    const expectedPredictions = byCell(trainedHere.predictions, { 'small-cnn': 'small-cnn' });
    for (const [cell, prediction] of byCell(imported.predictions, viaOnnx)) {
      const want = expectedPredictions.get(cell)!;
      assert.equal(prediction.predicted, want.predicted, cell);
      assert.ok(Math.abs(prediction.confidence - want.confidence) <= 1e-4, `${cell}: confidence ${prediction.confidence} against ${want.confidence}`);
    }
  });
});
