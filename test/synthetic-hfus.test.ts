import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { synthParams } from '../src/cli/synth.ts';
import { isUserError } from '../src/core/errors.ts';
import { HFUS_CLASSES, MARKER_SIZE } from '../src/plugins/datasets/hfus-phantom.ts';
import { phantomFor, SYNTHETIC_HFUS_DEFAULTS, type SyntheticHfusParams } from '../src/plugins/datasets/synthetic-hfus.ts';
import { cli, cliAsync, FIXTURE_PLUGINS, tempDir, type CliResult } from './helpers.ts';

const CLASSES = ['AD', 'CG', 'PS', 'ST'];
const LEVELS = [0, 32, 64, 128, 255];

/** Relative path → SHA-256 of every file under `root`. */
function hashes(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else files.set(path.relative(root, full), createHash('sha256').update(readFileSync(full)).digest('hex'));
    }
  };
  walk(root);
  return files;
}

/** The pixels of a grayscale PNG (sharp would widen them to RGB without the colourspace). */
async function gray(file: string): Promise<Uint8Array> {
  const { data, info } = await sharp(file).toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.channels, 1, file);
  return new Uint8Array(data);
}

const imagesOf = (dir: string) => CLASSES.flatMap((cls) => readdirSync(path.join(dir, 'images', cls)).sort().map((file) => ({ cls, file })));

describe('salgrid synth', () => {
  const root = tempDir('salgrid-synth-');
  const runs: Record<string, CliResult> = {};
  const standard = ['--per-class', '50', '--size', '128', '--seed', '1'];

  before(async () => {
    // Independent runs, started together to keep the test short.
    const started = {
      first: cliAsync(['synth', 'first', ...standard], root),
      again: cliAsync(['synth', 'again', ...standard], root),
      otherSeed: cliAsync(['synth', 'other-seed', '--per-class', '50', '--size', '128', '--seed', '2'], root),
      shortcut: cliAsync(['synth', 'shortcut', ...standard, '--shortcut-probability', '0.5', '--shortcut-classes', 'AD,PS'], root),
    };
    for (const [name, run] of Object.entries(started)) runs[name] = await run.done;
    for (const [name, result] of Object.entries(runs)) assert.equal(result.code, 0, `${name}: ${result.stderr}`);
  });

  it('writes 200 images and 200 layer maps, laid out like an image-folder dataset, and says how to use them', () => {
    const dir = path.join(root, 'first');
    assert.deepEqual(readdirSync(path.join(dir, 'images')).sort(), CLASSES);
    const images = imagesOf(dir);
    assert.equal(images.length, 200);
    for (const cls of CLASSES) assert.equal(images.filter((i) => i.cls === cls).length, 50);
    assert.deepEqual(readdirSync(path.join(dir, 'layer-maps')).sort(), images.map((i) => i.file).sort());
    assert.match(runs.first.stdout, /wrote 200 images and 200 layer maps/);
    assert.match(runs.first.stdout, /source: image-folder, params: \{ images: first\/images, layerMaps: first\/layer-maps \}/);
  });

  it('gives identical bytes for the same options and different images for another seed', () => {
    const first = hashes(path.join(root, 'first'));
    assert.deepEqual(hashes(path.join(root, 'again')), first);
    const other = hashes(path.join(root, 'other-seed'));
    assert.deepEqual([...other.keys()], [...first.keys()]);
    const sharedImages = [...first].filter(([file, hash]) => file.startsWith('images') && other.get(file) === hash);
    assert.deepEqual(sharedImages, []);
  });

  it('writes 8-bit grayscale PNGs of the asked size, maps graded 0/32/64/128/255 with every level present', async () => {
    const dir = path.join(root, 'first');
    for (const { cls, file } of imagesOf(dir)) {
      for (const png of [path.join(dir, 'images', cls, file), path.join(dir, 'layer-maps', file)]) {
        const meta = await sharp(png).metadata();
        assert.deepEqual([meta.format, meta.channels, meta.depth, meta.width, meta.height], ['png', 1, 'uchar', 128, 128], png);
      }
      const map = await gray(path.join(dir, 'layer-maps', file));
      const counts = new Map<number, number>();
      for (const v of map) counts.set(v, (counts.get(v) ?? 0) + 1);
      assert.deepEqual([...counts.keys()].sort((a, b) => a - b), LEVELS, `${file} levels`);
    }
  });

  it('is brighter or darker in the diagnostic region as each condition should be', async () => {
    const dir = path.join(root, 'first');
    const mean: Record<string, Record<number, number>> = {};
    for (const cls of CLASSES) {
      const sum: Record<number, [number, number]> = {};
      for (const file of readdirSync(path.join(dir, 'images', cls))) {
        const image = await gray(path.join(dir, 'images', cls, file));
        const map = await gray(path.join(dir, 'layer-maps', file));
        map.forEach((level, i) => {
          sum[level] ??= [0, 0];
          sum[level][0] += image[i];
          sum[level][1] += 1;
        });
      }
      mean[cls] = Object.fromEntries(Object.entries(sum).map(([level, [total, n]]) => [level, total / n]));
    }
    // Healthy skin: the diagnostic region is the bright entry echo alone.
    assert.ok(mean.CG[255] > 1.4 * mean.CG[128], `CG epidermis ${mean.CG[255]} vs upper dermis ${mean.CG[128]}`);
    // AD and PS: the dark SLEB beneath the epidermis pulls the region down.
    assert.ok(mean.AD[255] < 0.7 * mean.CG[255], `AD ${mean.AD[255]} vs CG ${mean.CG[255]}`);
    assert.ok(mean.PS[255] < 0.7 * mean.CG[255], `PS ${mean.PS[255]} vs CG ${mean.CG[255]}`);
    // ST: the lesion is hypoechoic against the dermis around it.
    assert.ok(mean.ST[255] < 0.4 * mean.ST[128], `ST lesion ${mean.ST[255]} vs dermis ${mean.ST[128]}`);
    // Echogenicity falls with depth through the graded bands.
    for (const cls of CLASSES) assert.ok(mean[cls][128] > mean[cls][64] && mean[cls][64] > mean[cls][32], `${cls} bands ${mean[cls][128]}, ${mean[cls][64]}, ${mean[cls][32]}`);
  });

  it('puts the shortcut marker only on images of the listed classes, only in the gel above the skin, inside the box it lists', async () => {
    const plain = path.join(root, 'first');
    const marked = path.join(root, 'shortcut');
    const { params, markers } = JSON.parse(readFileSync(path.join(marked, 'shortcut-markers.json'), 'utf8')) as { params: SyntheticHfusParams; markers: { id: string; x: number; y: number; width: number; height: number }[] };
    assert.equal(params.shortcut.size, MARKER_SIZE, 'the default size is filled in');
    const listed = new Set(markers.map((m) => m.id));
    const boxes = new Map(markers.map((m) => [m.id, m]));
    // At 128 px a label of 0.8 × 128 px: 13 characters 6 px wide 8 px apart (102 px), 10 px tall, cut off only where the skin comes within 12 px of the top.
    for (const m of markers) assert.ok(m.width <= 102 && m.height <= 10 && m.y === 2, `${m.id}: box ${JSON.stringify(m)}`);
    assert.ok(markers.filter((m) => m.width === 102 && m.height === 10).length >= markers.length / 2, 'most labels are whole');
    for (const cls of ['AD', 'PS']) assert.ok([...listed].filter((id) => id.startsWith(`${cls}/`)).length >= 10, `${cls} carries markers`);
    assert.deepEqual([...listed].filter((id) => !/^(AD|PS)\//.test(id)), []);
    assert.match(runs.shortcut.stdout, new RegExp(`${listed.size} image\\(s\\) carry the marker`));

    for (const { cls, file } of imagesOf(plain)) {
      const id = `${cls}/${file}`;
      const before = await gray(path.join(plain, 'images', cls, file));
      const after = await gray(path.join(marked, 'images', cls, file));
      const map = await gray(path.join(plain, 'layer-maps', file));
      assert.deepEqual(readFileSync(path.join(marked, 'layer-maps', file)), readFileSync(path.join(plain, 'layer-maps', file)), `${file}: the marker never changes the map`);
      const changed: number[] = [];
      before.forEach((v, i) => v !== after[i] && changed.push(i));
      assert.equal(changed.length > 0, listed.has(id), `${id}: changed ${changed.length} pixels, listed ${listed.has(id)}`);
      if (changed.length > 0) {
        // The listed box is the bounding box of the marker's pixels.
        const xs = changed.map((i) => i % 128);
        const ys = changed.map((i) => Math.floor(i / 128));
        const [x, y] = [Math.min(...xs), Math.min(...ys)];
        assert.deepEqual(boxes.get(id), { id, x, y, width: Math.max(...xs) - x + 1, height: Math.max(...ys) - y + 1 });
      }
      for (const i of changed) {
        const x = i % 128;
        const y = Math.floor(i / 128);
        assert.equal(map[i], 0, `${id}: marker pixel (${x}, ${y}) on layer level ${map[i]}`);
        let skinTop = 0;
        while (skinTop < 128 && map[skinTop * 128 + x] === 0) skinTop++;
        assert.ok(y < skinTop, `${id}: marker pixel (${x}, ${y}) not above the skin (starts at row ${skinTop})`);
        assert.ok(after[i] > 200, `${id}: marker pixel is bright`);
      }
    }
  });

  it('refuses a bad option with one sentence naming it', () => {
    const cases: [Parameters<typeof synthParams>[0], RegExp][] = [
      [{ perClass: '0' }, /^--per-class must be >= 1, got 0\.$/],
      [{ size: 'big' }, /^--size takes a whole number of pixels from 16 to 4096, or HEIGHTxWIDTH such as 128x160, got "big"\.$/],
      [{ size: '8x300' }, /^--size takes a whole number of pixels .* got "8x300"\.$/],
      [{ noise: '2' }, /^--noise must be <= 1, got 2\.$/],
      [{ shortcutClasses: 'AD' }, /^--shortcut-probability and --shortcut-classes go together/],
      [{ shortcutProbability: '1', shortcutClasses: 'AD,XX' }, /^--shortcut-classes must be one of "AD", "CG", "PS", "ST", got "XX"\.$/],
      [{ shortcutSize: '0.5' }, /^--shortcut-size sizes the marker that --shortcut-probability and --shortcut-classes add; give them too\.$/],
      [{ shortcutProbability: '1', shortcutClasses: 'AD', shortcutSize: '0' }, /^--shortcut-size must be > 0, got 0\.$/],
      [{ shortcutProbability: '1', shortcutClasses: 'AD', shortcutSize: '1.5' }, /^--shortcut-size must be <= 1, got 1\.5\.$/],
    ];
    for (const [options, message] of cases) assert.throws(() => synthParams(options), (error: Error) => isUserError(error) && message.test(error.message), JSON.stringify(options));
    assert.deepEqual(synthParams({ size: '16x24', shortcutProbability: '0.5', shortcutClasses: 'PS' }), { size: [16, 24], seed: 1, perClass: 50, noise: 0.8, shortcut: { probability: 0.5, classes: ['PS'], size: 0.8 } });
    assert.deepEqual(synthParams({ shortcutProbability: '1', shortcutClasses: 'ST', shortcutSize: '0.25' }).shortcut, { probability: 1, classes: ['ST'], size: 0.25 });

    const dir = tempDir('salgrid-synth-bad-');
    const bad = cli(['synth', 'out', '--per-class', '0'], dir);
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, 'salgrid: --per-class must be >= 1, got 0.\n');
  });

  it('will not mix a new dataset into an old one unless told to replace it', () => {
    const dir = tempDir('salgrid-synth-again-');
    assert.equal(cli(['synth', 'out', '--per-class', '3', '--size', '16'], dir).code, 0);
    const again = cli(['synth', 'out', '--per-class', '1', '--size', '16'], dir);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds images, layer-maps, shortcut-markers.json; pass --force to replace them/);
    assert.equal(cli(['synth', 'out', '--per-class', '1', '--size', '16x24', '--force'], dir).code, 0);
    assert.deepEqual(readdirSync(path.join(dir, 'out', 'layer-maps')), ['AD-001.png', 'CG-001.png', 'PS-001.png', 'ST-001.png']);
  });
});

describe('the shortcut marker', () => {
  const pixelsOf = (size: SyntheticHfusParams['size']) => (Array.isArray(size) ? size : [size, size]);

  it('stays wholly in the gel, inside its box, on every image shape; the image is otherwise the same and the map untouched', () => {
    for (const size of [16, [16, 24], [24, 16], [16, 300], [300, 16], 40, 64, [96, 160]] as SyntheticHfusParams['size'][]) {
      const [H, W] = pixelsOf(size);
      for (const share of [0.01, 0.5, 1]) {
        for (const cls of HFUS_CLASSES) {
          for (let index = 0; index < 6; index++) {
            const params = { ...SYNTHETIC_HFUS_DEFAULTS, size, shortcut: { probability: 1, classes: [cls], size: share } };
            const plain = phantomFor({ ...params, shortcut: { ...params.shortcut, probability: 0 } }, cls, index);
            const marked = phantomFor(params, cls, index);
            const where = `${JSON.stringify(size)} size ${share} ${cls} ${index}`;
            assert.deepEqual(marked.layerMap, plain.layerMap, where);
            assert.ok(marked.marker, `${where}: some of the label survives`);
            const { x, y, width, height } = marked.marker;
            let changed = 0;
            for (let i = 0; i < H * W; i++) {
              if (marked.image[i] === plain.image[i]) continue;
              changed++;
              const [px, py] = [i % W, Math.floor(i / W)];
              assert.ok(px >= x && px < x + width && py >= y && py < y + height, `${where}: pixel (${px}, ${py}) outside ${JSON.stringify(marked.marker)}`);
              let skinTop = 0;
              while (skinTop < H && plain.layerMap[skinTop * W + px] === 0) skinTop++;
              assert.ok(py < skinTop, `${where}: pixel (${px}, ${py}) not above the skin (row ${skinTop})`);
            }
            assert.ok(changed > 0, where);
          }
        }
      }
    }
  });

  it('is as long as size says: a share of the image width, whole characters, at least one', () => {
    const lengths = (size: SyntheticHfusParams['size'], share: number) =>
      Array.from({ length: 8 }, (_, index) => phantomFor({ ...SYNTHETIC_HFUS_DEFAULTS, size, shortcut: { probability: 1, classes: ['CG'], size: share } }, 'CG', index).marker!.width);
    // 64 px: characters 3 px wide, 4 px apart; the longest label is the one most images show whole.
    assert.equal(Math.max(...lengths(64, 0.8)), 51);
    assert.equal(Math.max(...lengths(64, 0.25)), 15);
    assert.equal(Math.max(...lengths(64, 0.01)), 3);
    assert.equal(Math.max(...lengths(64, 1)), 63);
    // 128 × 256: characters scale with the shorter side (6 px, 8 px apart), the length with the width.
    assert.equal(Math.max(...lengths([128, 256], 0.5)), 126);
  });
});

describe('synthetic-hfus as a manifest dataset', () => {
  it('indexes generated images and layer maps into the cache and splits them into stratified folds', () => {
    const dir = tempDir();
    writeFileSync(
      path.join(dir, 'sweep.yaml'),
      `name: phantoms
plugins: [${FIXTURE_PLUGINS}]
dataset:
  source: synthetic-hfus
  params: { perClass: 6, size: 32 }
  imageSize: [32, 32]
folds: { k: 3, seed: 1, validation: 0.2 }
models: [centroid]
explainers: []
metrics: []
`,
    );
    const result = cli(['run', 'sweep.yaml', '--only', 'split'], dir);
    assert.equal(result.code, 0, result.stderr);

    const cache = path.join(dir, 'runs', 'cache');
    const [indexKey] = readdirSync(path.join(cache, 'index')).filter((n) => !n.startsWith('.'));
    const indexDir = path.join(cache, 'index', indexKey);
    const index = JSON.parse(readFileSync(path.join(indexDir, 'index.json'), 'utf8')) as { classes: string[]; items: { id: string; label: number; image: string; layerMap: string; sha256: string; width: number; height: number }[] };
    assert.deepEqual(index.classes, CLASSES);
    assert.equal(index.items.length, 24);
    for (const item of index.items) {
      assert.match(item.id, /^(AD|CG|PS|ST)\/\1-\d{3}\.png$/);
      assert.equal(CLASSES[item.label], item.id.slice(0, 2));
      for (const file of [item.image, item.layerMap]) {
        assert.match(file, /^@index\//, 'generated files live inside the index artifact');
        assert.ok(existsSync(path.join(indexDir, file.slice('@index/'.length))), file);
      }
      assert.equal(item.sha256, createHash('sha256').update(readFileSync(path.join(indexDir, item.image.slice('@index/'.length)))).digest('hex'));
      assert.deepEqual([item.width, item.height], [32, 32]);
    }

    const [splitKey] = readdirSync(path.join(cache, 'split')).filter((n) => !n.startsWith('.'));
    const split = JSON.parse(readFileSync(path.join(cache, 'split', splitKey, 'split.json'), 'utf8')) as { folds: { fold: number; train: string[]; val: string[]; test: string[] }[] };
    assert.equal(split.folds.length, 3);
    const tested = split.folds.flatMap((f) => f.test).sort();
    assert.deepEqual(tested, index.items.map((i) => i.id).sort(), 'every image is tested exactly once');
    for (const fold of split.folds) {
      for (const cls of CLASSES) assert.equal(fold.test.filter((id) => id.startsWith(`${cls}/`)).length, 2, `fold ${fold.fold} holds 2 ${cls} test images`);
      assert.equal(new Set([...fold.train, ...fold.val, ...fold.test]).size, 24);
    }
    assert.ok(!existsSync(path.join(cache, 'train')) || readdirSync(path.join(cache, 'train')).every((n) => n.startsWith('.')), '--only split trains nothing');
  });
});
