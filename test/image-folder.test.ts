import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { MissingInputError, UserError } from '../src/core/errors.ts';
import type { DatasetIndex, DatasetPlugin } from '../src/core/plugins/types.ts';
import { hashFiles } from '../src/core/store/file-hashes.ts';
import { matchLayerMaps } from '../src/core/io/image-folder.ts';
import { writePng } from '../src/core/io/image-io.ts';
import { imageFolder } from '../src/plugins/datasets/image-folder.ts';
import { kfoldFolders } from '../src/plugins/datasets/kfold-folders.ts';
import { tempDir } from './helpers.ts';

/** A gray PNG whose pixels all hold `value`, so different values make different contents. */
async function png(file: string, width = 8, height = 6, value = 100): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await writePng(file, { width, height, channels: 1, data: new Uint8Array(width * height).fill(value) });
}

async function jpeg(file: string, width: number, height: number): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await sharp(Buffer.alloc(width * height * 3, 80), { raw: { width, height, channels: 3 } }).jpeg().toFile(file);
}

function text(file: string, contents = 'not an image'): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, contents);
}

/** Runs a dataset plugin as the index stage would: inputFiles, hashes, index. */
async function index<P>(plugin: DatasetPlugin<P>, params: P, manifestDir: string): Promise<{ result: DatasetIndex; warnings: string[]; inputs: string[] }> {
  const inputs = await plugin.inputFiles(params, manifestDir);
  const files = await hashFiles(inputs, path.join(tempDir(), 'hashes.json'));
  const warnings: string[] = [];
  const result = await plugin.index({
    params,
    files,
    out: tempDir(),
    manifestDir,
    progress: () => {},
    warn: (message) => warnings.push(message),
    signal: new AbortController().signal,
    writeFile: async () => {},
  });
  return { result, warnings, inputs };
}

/** images/{AD,CG}/… with layer maps in maps/ (flat, one with another extension). */
async function imageProject(): Promise<string> {
  const dir = tempDir();
  await png(path.join(dir, 'images/CG/b.png'), 8, 6, 10);
  await png(path.join(dir, 'images/CG/a.png'), 8, 6, 20);
  await jpeg(path.join(dir, 'images/AD/x.jpg'), 10, 4);
  await png(path.join(dir, 'images/AD/y.png'), 5, 5, 30);
  await png(path.join(dir, 'maps/a.png'), 8, 6, 255);
  await png(path.join(dir, 'maps/x.png'), 10, 4, 255);
  return dir;
}

const byId = (result: DatasetIndex) => new Map(result.items.map((item) => [item.id, item]));

describe('image-folder dataset', () => {
  it('lists classes in sorted order and one item per image with label, size and hash', async () => {
    const dir = await imageProject();
    text(path.join(dir, 'images/CG/.DS_Store'));
    const { result, inputs } = await index(imageFolder, { images: 'images' }, dir);
    assert.deepEqual(result.classes, ['AD', 'CG']);
    assert.deepEqual(result.items.map((item) => item.id), ['AD/x.jpg', 'AD/y.png', 'CG/a.png', 'CG/b.png']);
    const items = byId(result);
    assert.deepEqual({ ...items.get('AD/x.jpg'), sha256: undefined }, { id: 'AD/x.jpg', label: 0, image: path.join(dir, 'images/AD/x.jpg'), width: 10, height: 4, sha256: undefined });
    assert.equal(items.get('CG/b.png')!.label, 1);
    assert.match(items.get('CG/b.png')!.sha256!, /^[0-9a-f]{64}$/);
    assert.ok(result.items.every((item) => !item.layerMap), 'no layerMaps param, no maps');
    assert.deepEqual(inputs, [...inputs].sort());
    assert.equal(inputs.length, 4, 'hidden files are not inputs');
  });

  it('matches layer maps by file name (flat folder, other extension allowed) and indexes images without one', async () => {
    const dir = await imageProject();
    const { result, warnings, inputs } = await index(imageFolder, { images: 'images', layerMaps: 'maps' }, dir);
    const items = byId(result);
    assert.equal(items.get('CG/a.png')!.layerMap, path.join(dir, 'maps/a.png'));
    assert.equal(items.get('AD/x.jpg')!.layerMap, path.join(dir, 'maps/x.png'), 'x.jpg matches x.png');
    assert.equal(items.get('CG/b.png')!.layerMap, undefined);
    assert.equal(items.get('AD/y.png')!.layerMap, undefined);
    assert.equal(result.items.length, 4, 'images without a map stay in');
    assert.ok(warnings.some((w) => /2 of 4 images have no layer map .*layer-map metrics will skip them/.test(w)), warnings.join('\n'));
    assert.ok(inputs.includes(path.join(dir, 'maps/a.png')), 'layer maps are inputs');
  });

  it('matches layer maps in per-class folders, preferring them to flat ones', async () => {
    const dir = await imageProject();
    await png(path.join(dir, 'maps/CG/a.bmp.png'), 8, 6, 1);
    await png(path.join(dir, 'maps/CG/b.png'), 8, 6, 1);
    await png(path.join(dir, 'maps/CG/a.png'), 8, 6, 2);
    const { result } = await index(imageFolder, { images: 'images', layerMaps: 'maps' }, dir);
    const items = byId(result);
    assert.equal(items.get('CG/a.png')!.layerMap, path.join(dir, 'maps/CG/a.png'));
    assert.equal(items.get('CG/b.png')!.layerMap, path.join(dir, 'maps/CG/b.png'));
  });

  it('warns about a layer map that matches no image', async () => {
    const dir = await imageProject();
    await png(path.join(dir, 'maps/orphan.png'), 8, 6, 1);
    const { warnings } = await index(imageFolder, { images: 'images', layerMaps: 'maps' }, dir);
    assert.ok(warnings.some((w) => w.includes('match no image') && w.includes('orphan.png')), warnings.join('\n'));
  });

  it('refuses a layer map whose size differs from its image, naming both files and sizes', async () => {
    const dir = await imageProject();
    await png(path.join(dir, 'maps/b.png'), 7, 6, 1);
    await assert.rejects(index(imageFolder, { images: 'images', layerMaps: 'maps' }, dir), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.ok(error.message.includes(path.join(dir, 'maps/b.png')) && error.message.includes(path.join(dir, 'images/CG/b.png')), error.message);
      assert.match(error.message, /is 7×6 but its image .* is 8×6/);
      return true;
    });
  });

  it('refuses one flat layer map that would serve images of two classes', async () => {
    const dir = tempDir();
    await png(path.join(dir, 'images/CG/same.png'));
    await png(path.join(dir, 'images/AD/same.png'));
    await png(path.join(dir, 'maps/same.png'));
    await assert.rejects(index(imageFolder, { images: 'images', layerMaps: 'maps' }, dir), /matches two images.*per-class folders/);
  });

  it('refuses an empty class folder, naming it', async () => {
    const dir = await imageProject();
    mkdirSync(path.join(dir, 'images/PS'));
    text(path.join(dir, 'images/PS/readme.txt'));
    await assert.rejects(index(imageFolder, { images: 'images' }, dir), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /class folder .*images\/PS holds no images/);
      return true;
    });
  });

  it('stops at an unreadable image, naming it, unless onBadImage is skip', async () => {
    const dir = await imageProject();
    text(path.join(dir, 'images/CG/broken.png'), 'plain text pretending to be a PNG');
    await assert.rejects(index(imageFolder, { images: 'images' }, dir), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.ok(error.message.includes(path.join(dir, 'images/CG/broken.png')), error.message);
      assert.match(error.message, /not a readable image.*onBadImage: skip/);
      return true;
    });
    const { result, warnings } = await index(imageFolder, { images: 'images', onBadImage: 'skip' }, dir);
    assert.ok(!result.items.some((item) => item.id === 'CG/broken.png'), 'left out');
    assert.equal(result.items.length, 4);
    assert.ok(warnings.some((w) => w.includes('skipping') && w.includes('broken.png')), warnings.join('\n'));
  });

  it('refuses a class whose every image was skipped', async () => {
    const dir = await imageProject();
    text(path.join(dir, 'images/ST/only.png'));
    await assert.rejects(index(imageFolder, { images: 'images', onBadImage: 'skip' }, dir), /class folder .*ST has no readable images/);
  });

  it('warns about files that are not images and reads every supported extension, in any case', async () => {
    const dir = tempDir();
    await png(path.join(dir, 'images/C/a.PNG'));
    await jpeg(path.join(dir, 'images/C/b.JPEG'), 4, 4);
    await sharp(Buffer.alloc(4 * 4 * 3), { raw: { width: 4, height: 4, channels: 3 } }).tiff().toFile(path.join(dir, 'images/C/c.tif'));
    await sharp(Buffer.alloc(4 * 4 * 3), { raw: { width: 4, height: 4, channels: 3 } }).webp().toFile(path.join(dir, 'images/C/d.webp'));
    text(path.join(dir, 'images/C/notes.txt'));
    text(path.join(dir, 'images/stray.png'));
    const { result, warnings } = await index(imageFolder, { images: 'images' }, dir);
    assert.deepEqual(result.items.map((item) => item.id), ['C/a.PNG', 'C/b.JPEG', 'C/c.tif', 'C/d.webp']);
    assert.ok(warnings.some((w) => w.includes('ignoring 2 entries') && w.includes('notes.txt')), warnings.join('\n'));
  });

  it('reports a missing images or layer-map folder as missing input', async () => {
    const dir = await imageProject();
    await assert.rejects(imageFolder.inputFiles({ images: 'nowhere' }, dir), (error: Error) => error instanceof MissingInputError && error.message.includes(path.join(dir, 'nowhere')));
    await assert.rejects(imageFolder.inputFiles({ images: 'images', layerMaps: 'no-maps' }, dir), (error: Error) => error instanceof MissingInputError && error.message.includes('no-maps'));
  });
});

describe('matchLayerMaps', () => {
  const image = (cls: string, name: string) => ({ id: `${cls}/${name}`, cls, file: `/data/${cls}/${name}` });

  it('gives the exact name to its image before stems are considered', () => {
    const { byId: matched, unmatched } = matchLayerMaps([image('C', 'a.png'), image('C', 'a.bmp')], '/maps', ['/maps/a.png']);
    assert.equal(matched.get('C/a.png'), '/maps/a.png');
    assert.equal(matched.has('C/a.bmp'), false);
    assert.deepEqual(unmatched, []);
  });

  it('refuses two maps that match one image by stem', () => {
    assert.throws(() => matchLayerMaps([image('C', 'a.jpg')], '/maps', ['/maps/a.png', '/maps/a.tif']), /several layer maps \(a\.png, a\.tif\)/);
  });
});

/** data/k1..k2/{train,val,test}/<class>/<file>; k2 reuses k1's images in other parts. */
async function kfoldProject(): Promise<string> {
  const dir = tempDir();
  const put = (fold: number, part: string, id: string, value: number) => png(path.join(dir, 'data', `k${fold}`, part, id), 6, 4, value);
  const values: Record<string, number> = { 'A/1.png': 1, 'A/2.png': 2, 'A/3.png': 3, 'B/1.png': 4, 'B/2.png': 5, 'B/3.png': 6 };
  await put(1, 'train', 'A/1.png', values['A/1.png']);
  await put(1, 'train', 'B/1.png', values['B/1.png']);
  await put(1, 'val', 'A/2.png', values['A/2.png']);
  await put(1, 'test', 'A/3.png', values['A/3.png']);
  await put(1, 'test', 'B/3.png', values['B/3.png']);
  await put(2, 'train', 'A/3.png', values['A/3.png']);
  await put(2, 'train', 'B/3.png', values['B/3.png']);
  await put(2, 'test', 'A/1.png', values['A/1.png']);
  await put(2, 'test', 'B/1.png', values['B/1.png']);
  await put(2, 'test', 'B/2.png', values['B/2.png']);
  await png(path.join(dir, 'maps/A/1.png'), 6, 4, 255);
  return dir;
}

describe('kfold-folders dataset', () => {
  it('reads the given folds, with one item per image across folds', async () => {
    const dir = await kfoldProject();
    const { result, inputs, warnings } = await index(kfoldFolders, { root: 'data', layerMaps: 'maps' }, dir);
    assert.deepEqual(result.classes, ['A', 'B']);
    assert.deepEqual(result.items.map((item) => item.id), ['A/1.png', 'A/2.png', 'A/3.png', 'B/1.png', 'B/2.png', 'B/3.png']);
    assert.deepEqual(result.folds, [
      { train: ['A/1.png', 'B/1.png'], val: ['A/2.png'], test: ['A/3.png', 'B/3.png'] },
      { train: ['A/3.png', 'B/3.png'], val: [], test: ['A/1.png', 'B/1.png', 'B/2.png'] },
    ]);
    const items = byId(result);
    assert.deepEqual([items.get('A/1.png')!.width, items.get('A/1.png')!.height, items.get('A/1.png')!.label], [6, 4, 0]);
    assert.equal(items.get('A/1.png')!.layerMap, path.join(dir, 'maps/A/1.png'));
    assert.equal(items.get('B/3.png')!.label, 1);
    assert.equal(inputs.length, 11, 'every copy of every image, and the layer map');
    assert.deepEqual(inputs, [...inputs].sort());
    assert.ok(warnings.some((w) => /5 of 6 images have no layer map/.test(w)));
  });

  it('refuses one name with different contents in two folds', async () => {
    const dir = await kfoldProject();
    await png(path.join(dir, 'data/k2/train/A/2.png'), 6, 4, 99);
    await assert.rejects(index(kfoldFolders, { root: 'data' }, dir), /share the name A\/2\.png but differ in content/);
  });

  it('refuses an image in two parts of one fold', async () => {
    const dir = await kfoldProject();
    await png(path.join(dir, 'data/k1/test/A/1.png'), 6, 4, 1);
    await assert.rejects(index(kfoldFolders, { root: 'data' }, dir), /A\/1\.png is in both train and test of fold k1/);
  });

  it('refuses gaps in the fold numbers and folds without a test part', async () => {
    const gap = await kfoldProject();
    await png(path.join(gap, 'data/k4/train/A/1.png'), 6, 4, 1);
    await assert.rejects(index(kfoldFolders, { root: 'data' }, gap), /k1, k2, k4.*k1\.\.k3 without gaps/);
    const noTest = await kfoldProject();
    await png(path.join(noTest, 'data/k3/train/A/1.png'), 6, 4, 1);
    await assert.rejects(index(kfoldFolders, { root: 'data' }, noTest), /fold k3 has no test folder/);
  });

  it('leaves a skipped image out of the items and of every fold', async () => {
    const dir = await kfoldProject();
    text(path.join(dir, 'data/k1/test/B/bad.png'));
    const { result, warnings } = await index(kfoldFolders, { root: 'data', onBadImage: 'skip' }, dir);
    assert.ok(!result.items.some((item) => item.id === 'B/bad.png'));
    assert.deepEqual(result.folds![0].test, ['A/3.png', 'B/3.png']);
    assert.ok(warnings.some((w) => w.includes('bad.png')));
  });

  it('reports a missing root as missing input', async () => {
    const dir = tempDir();
    await assert.rejects(kfoldFolders.inputFiles({ root: 'folds' }, dir), (error: Error) => error instanceof MissingInputError && error.message.includes(path.join(dir, 'folds')));
    await assert.rejects(index(kfoldFolders, { root: 'folds' }, dir), MissingInputError);
  });
});
