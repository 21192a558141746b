import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import type { DatasetIndex } from '../src/core/plugins/types.ts';
import type { SplitResult } from '../src/core/stages/split.ts';
import { writePng } from '../src/core/io/image-io.ts';
import { FIXTURE_PLUGINS, cliAsync, tempDir } from './helpers.ts';

/** A manifest over a built-in folder dataset; the fixture model is never trained (`--only split`). */
function manifest(dataset: string, k: number): string {
  return `name: images
plugins: [${FIXTURE_PLUGINS}]
dataset:
  ${dataset}
  imageSize: [8, 8]
folds: { k: ${k}, seed: 1, validation: 0.25 }
training: { epochs: 1 }
models: [centroid]
`;
}

function artifact<T>(dir: string, stage: string, file: string): T {
  const root = path.join(dir, 'runs', 'cache', stage);
  const keys = readdirSync(root).filter((name) => !name.startsWith('.'));
  assert.equal(keys.length, 1, `one ${stage} artifact`);
  return JSON.parse(readFileSync(path.join(root, keys[0], file), 'utf8')) as T;
}

async function png(file: string, value: number): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await writePng(file, { width: 12, height: 10, channels: 1, data: new Uint8Array(120).fill(value) });
}

// Each test spawns its own CLI in its own folder, so they run side by side.
describe('folder datasets through the CLI', { concurrency: true }, () => {
  it('indexes an image-folder dataset with layer maps and splits it', async () => {
    const dir = tempDir();
    for (const [c, cls] of ['CG', 'AD', 'PS'].entries()) {
      for (let i = 0; i < 4; i++) await png(path.join(dir, 'data/images', cls, `${cls}-${i}.png`), 40 * c + i);
      await png(path.join(dir, 'data/maps', cls, `${cls}-0.png`), 255);
    }
    await sharp(Buffer.alloc(12 * 10 * 3, 7), { raw: { width: 12, height: 10, channels: 3 } }).jpeg().toFile(path.join(dir, 'data/images/CG/CG-9.jpg'));
    writeFileSync(path.join(dir, 'sweep.yaml'), manifest('source: image-folder\n  params: { images: data/images, layerMaps: data/maps }', 2));

    const run = await cliAsync(['run', 'sweep.yaml', '--only', 'split'], dir).done;
    assert.equal(run.code, 0, run.stderr + run.stdout);

    const index = artifact<DatasetIndex>(dir, 'index', 'index.json');
    assert.deepEqual(index.classes, ['AD', 'CG', 'PS']);
    assert.equal(index.items.length, 13);
    const first = index.items.find((item) => item.id === 'CG/CG-0.png')!;
    // Paths under the manifest's folder are stored relative to it, so the project can move.
    assert.deepEqual(
      { image: first.image, layerMap: first.layerMap, label: first.label, width: first.width, height: first.height },
      { image: 'data/images/CG/CG-0.png', layerMap: 'data/maps/CG/CG-0.png', label: 1, width: 12, height: 10 },
    );
    assert.equal(index.items.filter((item) => item.layerMap).length, 3);
    assert.ok(index.items.every((item) => /^[0-9a-f]{64}$/.test(item.sha256!)));

    const split = artifact<SplitResult>(dir, 'split', 'split.json');
    assert.equal(split.folds.length, 2);
    for (const fold of split.folds) {
      const ids = [...fold.train, ...fold.val, ...fold.test].sort();
      assert.deepEqual(ids, index.items.map((item) => item.id).sort(), `fold ${fold.fold} covers every image once`);
    }
    assert.ok(!readdirSync(path.join(dir, 'runs', 'cache')).includes('train'), 'nothing past split ran');
  });

  it('hands the folds of a kfold-folders dataset to the split stage unchanged', async () => {
    const dir = tempDir();
    const layout: [string, string, string, number][] = [
      ['k1', 'train', 'A/a1.png', 1], ['k1', 'train', 'B/b1.png', 2], ['k1', 'val', 'A/a2.png', 3], ['k1', 'test', 'B/b2.png', 4],
      ['k2', 'train', 'B/b2.png', 4], ['k2', 'train', 'A/a2.png', 3], ['k2', 'test', 'A/a1.png', 1], ['k2', 'test', 'B/b1.png', 2],
    ];
    for (const [fold, part, id, value] of layout) await png(path.join(dir, 'folds', fold, part, id), value);
    writeFileSync(path.join(dir, 'sweep.yaml'), manifest('source: kfold-folders\n  params: { root: folds }', 2));

    const run = await cliAsync(['run', 'sweep.yaml', '--only', 'split'], dir).done;
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const index = artifact<DatasetIndex>(dir, 'index', 'index.json');
    assert.deepEqual(index.items.map((item) => item.id), ['A/a1.png', 'A/a2.png', 'B/b1.png', 'B/b2.png']);
    const split = artifact<SplitResult>(dir, 'split', 'split.json');
    assert.deepEqual(
      split.folds.map(({ train, val, test }) => ({ train, val, test })),
      [
        { train: ['A/a1.png', 'B/b1.png'], val: ['A/a2.png'], test: ['B/b2.png'] },
        { train: ['A/a2.png', 'B/b2.png'], val: [], test: ['A/a1.png', 'B/b1.png'] },
      ],
    );
  });

  it('fails the index with one sentence naming a corrupt image', async () => {
    const dir = tempDir();
    await png(path.join(dir, 'images/A/good.png'), 1);
    mkdirSync(path.join(dir, 'images/B'), { recursive: true });
    writeFileSync(path.join(dir, 'images/B/bad.png'), 'not really a png');
    writeFileSync(path.join(dir, 'sweep.yaml'), manifest('source: image-folder\n  params: { images: images }', 2));
    const run = await cliAsync(['run', 'sweep.yaml', '--only', 'index'], dir).done;
    assert.notEqual(run.code, 0);
    const output = run.stdout + run.stderr;
    assert.ok(output.includes(`${path.join(dir, 'images/B/bad.png')} is not a readable image`), output);
    assert.doesNotMatch(output, /at .*image-io\.ts/, 'no stack trace');
  });
});
