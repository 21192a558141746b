/**
 * `salgrid score` through the real CLI: maps made elsewhere scored with a
 * perturbation metric (the golden tiny-cnn, pytorch-grad-cam's numbers) and
 * with a layer-map metric (the study's golden Hit Rate), folders paired by
 * name, and the one-sentence errors.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { writePng } from '../src/core/io/image-io.ts';
import { readNpy, writeNpy } from '../src/core/io/npy.ts';
import { ROOT, cli, tempDir } from './helpers.ts';

const TINY = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const LAYERS = path.join(ROOT, 'test', 'fixtures', 'golden', 'layer-metrics');

function parseCsv(text: string): Record<string, string>[] {
  const [head, ...lines] = text.trim().split('\n');
  const columns = head.split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((cell, i) => [columns[i], cell])));
}

/** The error of a failed run: exit 1 and one sentence on stderr. */
function assertOneSentence(result: ReturnType<typeof cli>, pattern: RegExp): void {
  assert.equal(result.code, 1, result.stdout + result.stderr);
  const lines = result.stderr.trim().split('\n');
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0], /^salgrid: .+\.$/);
  assert.match(lines[0], pattern);
}

describe('salgrid score', () => {
  it('confidence-change of pytorch-grad-cam maps (.npy) on a model and .npy inputs equals pytorch-grad-cam, as CSV', async () => {
    const dir = tempDir('salgrid-score-');
    const result = cli(['score', '--maps', path.join(TINY, 'cam-gradcam-predicted.npy'), '--metric', 'confidence-change', '--model', TINY, '--input', path.join(TINY, 'inputs.npy'), '--backend', 'cpu', '--out', 'rows.csv'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const rows = parseCsv(readFileSync(path.join(dir, 'rows.csv'), 'utf8'));
    assert.deepEqual(Object.keys(rows[0]), ['id', 'before', 'after', 'change', 'drop', 'relativeDrop', 'increase']);
    assert.deepEqual(rows.map((r) => r.id), ['0', '1', '2', '3']);
    const [change, dic] = await Promise.all([readNpy(path.join(TINY, 'metric-confidence-change-softmax.npy')), readNpy(path.join(TINY, 'metric-dic-softmax.npy'))]);
    rows.forEach((row, i) => {
      assert.ok(Math.abs(Number(row.change) - Number(change.data[i])) <= 1e-4, `image ${i}: change ${row.change} vs ${change.data[i]}`);
      assert.ok(Math.abs(Number(row.drop) - Number(dic.data[i])) <= 1e-4, `image ${i}: drop ${row.drop} vs ${dic.data[i]}`);
      assert.equal(row.increase, 'false');
    });
    assert.match(result.stdout, /wrote rows\.csv: 4 rows × 6 measures of confidence-change/);
  });

  it('deletion with params writes the curve columns as JSON', () => {
    const dir = tempDir('salgrid-score-');
    const result = cli(['score', '--maps', path.join(TINY, 'cam-gradcam-predicted.npy'), '--metric', 'deletion', '--param', 'steps=4', '--model', TINY, '--input', path.join(TINY, 'inputs.npy'), '--backend', 'cpu', '--out', 'rows.json', '--quiet'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const rows = JSON.parse(readFileSync(path.join(dir, 'rows.json'), 'utf8')) as Record<string, number>[];
    assert.equal(rows.length, 4);
    assert.deepEqual(Object.keys(rows[0]), ['id', 'auc', 'score@0', 'score@0.25', 'score@0.5', 'score@0.75', 'score@1']);
    for (const row of rows) {
      const curve = [row['score@0'], row['score@0.25'], row['score@0.5'], row['score@0.75'], row['score@1']];
      assert.ok(Math.abs(row.auc - (curve.slice(1).reduce((a, v, i) => a + (v + curve[i]) / 2, 0) / 4)) < 1e-9);
    }
  });

  it('hit-rate of the study’s golden heat maps against their layer maps (arrays, paired by index)', () => {
    const dir = tempDir('salgrid-score-');
    const result = cli(['score', '--maps', path.join(LAYERS, 'heatmap.npy'), '--layer-maps', path.join(LAYERS, 'slm.npy'), '--metric', 'hit-rate', '--out', 'rows.json'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const rows = JSON.parse(readFileSync(path.join(dir, 'rows.json'), 'utf8')) as Record<string, number | null>[];
    const expected = (JSON.parse(readFileSync(path.join(LAYERS, 'expected.json'), 'utf8')) as { rows: { hit_rate_graded: number | null; hit_rate_binary: number | null }[] }).rows;
    assert.equal(rows.length, expected.length);
    rows.forEach((row, i) => {
      for (const [column, want] of [['graded', expected[i].hit_rate_graded], ['binary', expected[i].hit_rate_binary]] as const) {
        if (want === null) assert.equal(row[column], null);
        else assert.ok(Math.abs((row[column] as number) - want) <= 1e-9, `image ${i} ${column}: ${row[column]} vs ${want}`);
      }
    });
  });

  it('folders pair maps and layer maps by name; a folder from salgrid explain (.npy + overlay .png) scores its .npy maps', async () => {
    const dir = tempDir('salgrid-score-');
    const heat = await readNpy(path.join(LAYERS, 'heatmap.npy'));
    const slm = await readNpy(path.join(LAYERS, 'slm.npy'));
    const [, h, w] = heat.shape;
    const size = h * w;
    mkdirSync(path.join(dir, 'maps', 'CG'), { recursive: true });
    mkdirSync(path.join(dir, 'layers'), { recursive: true });
    for (const [i, name] of [[0, 'CG/img-a'], [1, 'img-b']] as const) {
      await writeNpy(path.join(dir, 'maps', `${name}.npy`), { dtype: 'float32', shape: [h, w], data: (heat.data as Float32Array).slice(i * size, (i + 1) * size) });
      // An overlay picture beside the map, as salgrid explain writes: not a map.
      await writePng(path.join(dir, 'maps', `${name}.png`), { width: w, height: h, channels: 1, data: new Uint8Array(size).fill(255) });
    }
    // Layer maps as PNG, in the other order of names.
    await writePng(path.join(dir, 'layers', 'img-b.png'), { width: w, height: h, channels: 1, data: (slm.data as Uint8Array).slice(size, 2 * size) });
    await writePng(path.join(dir, 'layers', 'img-a.png'), { width: w, height: h, channels: 1, data: (slm.data as Uint8Array).slice(0, size) });
    const result = cli(['score', '--maps', 'maps', '--layer-maps', 'layers', '--metric', 'hit-rate', '--out', 'rows.csv'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const rows = parseCsv(readFileSync(path.join(dir, 'rows.csv'), 'utf8'));
    const expected = (JSON.parse(readFileSync(path.join(LAYERS, 'expected.json'), 'utf8')) as { rows: { hit_rate_graded: number | null }[] }).rows;
    assert.deepEqual(rows.map((r) => r.id), ['CG/img-a', 'img-b']);
    rows.forEach((row, i) => assert.equal(row.graded === '' ? null : Number(row.graded), expected[i].hit_rate_graded, `map ${row.id}`));
  });

  it('errors are one sentence with exit code 1', () => {
    const dir = tempDir('salgrid-score-');
    const maps = path.join(TINY, 'cam-gradcam-predicted.npy');
    assertOneSentence(cli(['score', '--maps', maps, '--metric', 'hit-rate', '--out', 'rows.csv'], dir), /--layer-maps/);
    assertOneSentence(cli(['score', '--maps', maps, '--metric', 'confidence-change', '--out', 'rows.csv'], dir), /--model .*--input/);
    assertOneSentence(cli(['score', '--maps', maps, '--metric', 'deletoin', '--out', 'rows.csv'], dir), /did you mean "deletion"/);
    assertOneSentence(cli(['score', '--maps', maps, '--metric', 'deletion', '--out', 'rows.txt'], dir), /\.csv or \.json/);
    assertOneSentence(cli(['score', '--maps', maps, '--metric', 'confidence-change', '--param', 'cover=everything', '--model', TINY, '--input', path.join(TINY, 'inputs.npy'), '--out', 'rows.csv'], dir), /cover/);
    assertOneSentence(cli(['score', '--maps', path.join(LAYERS, 'heatmap.npy'), '--metric', 'deletion', '--model', TINY, '--input', path.join(TINY, 'inputs.npy'), '--out', 'rows.csv'], dir), /6 maps and --input 4 inputs/);
    assertOneSentence(cli(['score', '--maps', path.join(dir, 'nothing.npy'), '--metric', 'hit-rate', '--out', 'rows.csv'], dir), /not found/);
  });
});
