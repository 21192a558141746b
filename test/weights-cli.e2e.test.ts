/**
 * `salgrid weights import | list | path` and `salgrid predict` through the
 * real CLI, on the small torchvision goldens (MobileNetV2 ×0.5 and a tiny
 * DenseNet, 4 classes, 96×96 inputs): imported models and the .pth files
 * themselves give torchvision's logits, images go through the model card's
 * preprocessing in file order, and mistakes are one line each.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { cliRegistry } from '../src/cli/arch-params.ts';
import { imagenetStoreName } from '../src/cli/weights.ts';
import type { Params } from '../src/core/plugins/types.ts';
import type { TfjsArchitecture } from '../src/core/tensor/tfjs-architecture.ts';
import { writePng } from '../src/core/io/image-io.ts';
import { readNpy, writeNpy } from '../src/core/io/npy.ts';
import { ROOT, cliAsync, mistake, ok, tempDir, type CliResult } from './helpers.ts';

const GOLDEN = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision');
const MOBILENET = path.join(GOLDEN, 'mobilenet_v2');
const DENSENET = path.join(GOLDEN, 'densenet');
const CLASSES = ['AD', 'CG', 'PS', 'ST'];

const config = (dir: string) => JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
const mobilenetConfig = config(MOBILENET) as { width_mult: number; num_classes: number; params: number };
const densenetConfig = config(DENSENET) as { growth_rate: number; block_config: number[]; num_init_features: number; num_classes: number; params: number };

/** The architecture params each golden was made with, as --arch-param flags. */
const MOBILENET_PARAMS = ['--arch-param', `widthMult=${mobilenetConfig.width_mult}`];
const DENSENET_PARAMS = [
  '--arch-param', `growthRate=${densenetConfig.growth_rate}`,
  '--arch-param', `blockConfig=[${densenetConfig.block_config.join(',')}]`,
  '--arch-param', `initFeatures=${densenetConfig.num_init_features}`,
];

const work = tempDir('salgrid-weights-');
const store = path.join(work, 'store');
const env = { SALGRID_WEIGHTS: store };

async function salgrid(...args: string[]): Promise<CliResult> {
  return cliAsync(args, work, env).done;
}


async function assertLogits(file: string, golden: string): Promise<void> {
  const [actual, expected] = await Promise.all([readNpy(file), readNpy(path.join(golden, 'logits.npy'))]);
  assert.equal(actual.dtype, 'float32');
  assert.deepEqual(actual.shape, expected.shape);
  let worst = 0;
  for (let i = 0; i < actual.data.length; i++) worst = Math.max(worst, Math.abs(Number(actual.data[i]) - Number(expected.data[i])));
  assert.ok(worst <= 1e-4, `${file}: max |logit − torchvision| is ${worst}`);
}

const out = (name: string) => path.join(work, 'out', name);
const entry = (name: string) => path.join(store, name);

describe('salgrid weights and predict', () => {
  before(async () => {
    // Both imports side by side: they write different entries.
    const [mobilenet, densenet] = await Promise.all([
      salgrid('weights', 'import', 'mobilenet-v2', path.join(MOBILENET, 'state_dict.pth'), ...MOBILENET_PARAMS, '--input-size', '96', '--classes', CLASSES.join(','), '--backend', 'cpu'),
      salgrid('weights', 'import', 'densenet', path.join(DENSENET, 'state_dict.pth'), ...DENSENET_PARAMS, '--input-size', '96', '--as', 'tiny-densenet', '--backend', 'wasm'),
    ]);
    ok(mobilenet);
    ok(densenet);
    assert.match(mobilenet.stdout, /imported mobilenet-v2-state_dict: mobilenet-v2 \(widthMult=0\.5\), 4 classes, 692,804 trainable parameters, input 96×96/);
    assert.match(mobilenet.stdout, new RegExp(`in ${entry('mobilenet-v2-state_dict').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(densenet.stdout, /imported tiny-densenet: densenet \(growthRate=12 blockConfig=\[2,3,2,2\] initFeatures=24 bnSize=4\), 4 classes, 71,440 trainable parameters/);
    assert.equal(mobilenetConfig.params, 692_804);
    assert.equal(densenetConfig.params, 71_440);
  });

  it('writes whole store entries: model, weights and card, nothing half-written beside them', () => {
    assert.deepEqual(readdirSync(store).sort(), ['mobilenet-v2-state_dict', 'tiny-densenet']);
    for (const name of ['mobilenet-v2-state_dict', 'tiny-densenet']) {
      assert.deepEqual(readdirSync(entry(name)).sort(), ['model.json', 'salgrid-model.json', 'weights.bin']);
    }
    const card = JSON.parse(readFileSync(path.join(entry('mobilenet-v2-state_dict'), 'salgrid-model.json'), 'utf8'));
    assert.equal(card.architecture.id, 'mobilenet-v2');
    assert.deepEqual(card.architecture.params, { widthMult: 0.5 });
    assert.deepEqual(card.classes, CLASSES);
    assert.deepEqual(card.preprocessing.size, [96, 96]);
    assert.equal(card.origin.imported, 'state_dict.pth');
    assert.match(card.origin.sha256, /^[0-9a-f]{64}$/);
  });

  it('lists the store and prints its folder', async () => {
    const [list, where, json] = await Promise.all([salgrid('weights', 'list'), salgrid('weights', 'path'), salgrid('weights', 'list', '--json')]);
    assert.equal(ok(where).stdout.trim(), store);
    const rows = ok(list).stdout.split('\n');
    assert.match(rows.find((r) => r.startsWith('mobilenet-v2-state_dict')) ?? '', /mobilenet-v2\s+widthMult=0\.5\s+4\s+imported from state_dict\.pth/);
    assert.match(rows.find((r) => r.startsWith('tiny-densenet')) ?? '', /densenet\s+growthRate=12 blockConfig=\[2,3,2,2\] initFeatures=24 bnSize=4\s+4\s+imported from state_dict\.pth/);
    const entries = JSON.parse(ok(json).stdout) as { name: string; classes: string[] }[];
    assert.deepEqual(entries.map((e) => [e.name, e.classes.length]), [['mobilenet-v2-state_dict', 4], ['tiny-densenet', 4]]);
  });

  it('an empty store says how to fill it', async () => {
    const result = ok(await cliAsync(['weights', 'list'], work, { SALGRID_WEIGHTS: path.join(work, 'empty-store') }).done);
    assert.match(result.stdout, /no weights in .*empty-store yet; add some with: salgrid weights import/);
  });

  it("predicts torchvision's logits from a store entry on cpu and wasm, by name or by folder", async () => {
    const runs = await Promise.all([
      salgrid('predict', '--model', 'mobilenet-v2-state_dict', '--input', path.join(MOBILENET, 'inputs.npy'), '--logits', '--out', out('mobilenet-cpu.npy'), '--backend', 'cpu'),
      salgrid('predict', '--model', entry('mobilenet-v2-state_dict'), '--input', path.join(MOBILENET, 'inputs.npy'), '--logits', '--out', out('mobilenet-wasm.npy'), '--backend', 'wasm', '--batch-size', '1'),
      salgrid('predict', '--model', path.join(entry('tiny-densenet'), 'model.json'), '--input', path.join(DENSENET, 'inputs.npy'), '--logits', '--out', out('densenet-cpu.npy'), '--backend', 'cpu'),
      salgrid('predict', '--model', 'tiny-densenet', '--input', path.join(DENSENET, 'inputs.npy'), '--logits', '--out', out('densenet-wasm.npy'), '--backend', 'wasm', '--quiet'),
    ]);
    runs.forEach(ok);
    assert.match(runs[0].stdout, /^backend: cpu /m);
    assert.match(runs[0].stdout, /inputs\.npy\[0\]\s+(AD|CG|PS|ST)\s/);
    assert.match(runs[0].stdout, /logits \[2, 4\] .*columns AD, CG, PS, ST/);
    assert.doesNotMatch(runs[3].stdout, /backend:|inputs\.npy\[0\]/, '--quiet prints only where the array went');
    await assertLogits(out('mobilenet-cpu.npy'), MOBILENET);
    await assertLogits(out('mobilenet-wasm.npy'), MOBILENET);
    await assertLogits(out('densenet-cpu.npy'), DENSENET);
    await assertLogits(out('densenet-wasm.npy'), DENSENET);
  });

  it('predicts the same logits straight from the .pth with --arch', async () => {
    const runs = await Promise.all([
      salgrid('predict', '--model', path.join(MOBILENET, 'state_dict.pth'), '--arch', 'mobilenet-v2', ...MOBILENET_PARAMS, '--input', path.join(MOBILENET, 'inputs.npy'), '--logits', '--out', out('mobilenet-pth.npy'), '--backend', 'cpu'),
      salgrid('predict', '--model', path.join(DENSENET, 'state_dict.pth'), '--arch', 'densenet', ...DENSENET_PARAMS, '--input', path.join(DENSENET, 'inputs.npy'), '--logits', '--out', out('densenet-pth.npy'), '--backend', 'wasm'),
    ]);
    runs.forEach(ok);
    await assertLogits(out('mobilenet-pth.npy'), MOBILENET);
    await assertLogits(out('densenet-pth.npy'), DENSENET);
  });

  it("gives probabilities for a folder of images, in file-name order, preprocessed as the card says", async () => {
    const images = path.join(work, 'images');
    mkdirSync(images, { recursive: true });
    // Written out of order, of other sizes than the network's, one grey: predict sorts, resizes and makes three channels.
    const pictures: [string, number, 1 | 3][] = [['b.png', 200, 3], ['a.png', 30, 3], ['c.png', 120, 1]];
    for (const [name, seed, channels] of pictures) {
      const data = new Uint8Array(40 * 50 * channels).map((_, i) => (seed + i * 7) % 256);
      await writePng(path.join(images, name), { width: 50, height: 40, channels, data });
    }
    writeFileSync(path.join(images, 'notes.txt'), 'not an image');
    const [folder, single] = await Promise.all([
      salgrid('predict', '--model', 'mobilenet-v2-state_dict', '--input', images, '--out', out('folder.npy'), '--backend', 'wasm', '--batch-size', '2'),
      salgrid('predict', '--model', 'mobilenet-v2-state_dict', '--input', path.join(images, 'c.png'), '--out', out('single.npy'), '--backend', 'wasm'),
    ]);
    ok(folder);
    ok(single);
    const order = [...folder.stdout.matchAll(/^(\d)\s+(\S+)\s+(\S+)\s+([\d.]+)\s*$/gm)].map((m) => [Number(m[1]), path.basename(m[2]), m[3]]);
    assert.deepEqual(order.map(([row, name]) => [row, name]), [[0, 'a.png'], [1, 'b.png'], [2, 'c.png']]);
    for (const [, , predicted] of order) assert.ok(CLASSES.includes(String(predicted)), `class names come from the card, got ${predicted}`);
    const probabilities = await readNpy(out('folder.npy'));
    assert.deepEqual(probabilities.shape, [3, 4]);
    for (let row = 0; row < 3; row++) {
      const values = Array.from(probabilities.data.subarray(row * 4, row * 4 + 4), Number);
      assert.ok(values.every((p) => p > 0 && p < 1));
      assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-5, `row ${row} sums to 1`);
    }
    const alone = await readNpy(out('single.npy'));
    for (let c = 0; c < 4; c++) assert.ok(Math.abs(Number(alone.data[c]) - Number(probabilities.data[8 + c])) < 1e-5, 'row 2 is c.png');
  });

  it("names a 1000-class import <arch>-imagenet where torchvision has ImageNet weights for its params (what pretrained: imagenet looks for)", async () => {
    const registry = await cliRegistry();
    const name = (id: string, params: Params = {}) => imagenetStoreName(registry.get('architecture', id) as TfjsArchitecture, params);
    assert.equal(name('mobilenet-v2'), 'mobilenet-v2-imagenet');
    assert.equal(name('mobilenet-v2', { widthMult: 0.5 }), undefined);
    assert.equal(name('densenet'), 'densenet201-imagenet');
    assert.equal(name('densenet121'), 'densenet121-imagenet');
    assert.equal(name('resnet', { depth: 18 }), 'resnet18-imagenet');
    assert.equal(name('resnet50', { groups: 32 }), undefined);
    assert.equal(name('googlenet'), 'googlenet-imagenet');
    assert.equal(name('small-cnn'), undefined);
  });

  it('says what is wrong in one line: unknown architecture, bad --arch-param, .pth without --arch, wrong .npy shape, missing input', async () => {
    const pth = path.join(MOBILENET, 'state_dict.pth');
    const small = path.join(work, 'small.npy');
    await writeNpy(small, { dtype: 'float32', shape: [1, 64, 64, 3], data: new Float32Array(64 * 64 * 3) });
    const [unknownArch, badValue, unknownParam, badSyntax, noArch, wrongShape, missingInput, unknownModel] = await Promise.all([
      salgrid('weights', 'import', 'mobilenet-v3', pth),
      salgrid('weights', 'import', 'mobilenet-v2', pth, '--arch-param', 'widthMult=wide'),
      salgrid('predict', '--model', pth, '--arch', 'mobilenet-v2', '--arch-param', 'widthmult=0.5', '--input', path.join(MOBILENET, 'inputs.npy'), '--out', out('x.npy')),
      salgrid('weights', 'import', 'densenet', pth, '--arch-param', 'blockConfig'),
      salgrid('predict', '--model', pth, '--input', path.join(MOBILENET, 'inputs.npy'), '--out', out('x.npy')),
      salgrid('predict', '--model', 'mobilenet-v2-state_dict', '--input', small, '--out', out('x.npy'), '--backend', 'wasm'),
      salgrid('predict', '--model', 'mobilenet-v2-state_dict', '--input', path.join(work, 'nope.png'), '--out', out('x.npy')),
      salgrid('predict', '--model', 'no-such-model', '--input', path.join(MOBILENET, 'inputs.npy'), '--out', out('x.npy')),
    ]);
    mistake(unknownArch, /unknown architecture "mobilenet-v3"; did you mean "mobilenet-v2"\?/);
    mistake(badValue, /--arch-param widthMult of mobilenet-v2 must be a number, got "wide"/);
    mistake(unknownParam, /--arch-param widthmult: mobilenet-v2 has no param "widthmult"; did you mean "widthMult"\?/);
    mistake(badSyntax, /--arch-param takes key=value/);
    mistake(noArch, /is a PyTorch state dict.*add --arch <id>/);
    mistake(wrongShape, /small\.npy holds 1 input\(s\) of 64×64 pixels .* but the model takes 96×96/);
    mistake(missingInput, /Input not found: .*nope\.png/);
    mistake(unknownModel, /--model no-such-model is neither a file or folder here nor a name in the weights store/);
    assert.ok(!existsSync(out('x.npy')), 'no output after a mistake');
  });
});
