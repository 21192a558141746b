/**
 * `salgrid explain` through the real CLI, on the tiny-cnn golden (a bare
 * tfjs model, pytorch-grad-cam's maps) and the small torchvision MobileNetV2
 * golden (a .pth with --arch, so layers are torch module paths): the maps
 * equal the reference's, --target picks the class, a folder gets one .npy
 * and one JET overlay per input, and mistakes are one line each.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { readImage, writePng } from '../src/core/io/image-io.ts';
import { readNpy, type NpyArray } from '../src/core/io/npy.ts';
import { ROOT, cliAsync, mistake, ok, tempDir, type CliResult } from './helpers.ts';

const TINY = path.join(ROOT, 'test', 'fixtures', 'golden', 'tiny-cnn');
const MOBILENET = path.join(ROOT, 'test', 'fixtures', 'golden', 'torchvision', 'mobilenet_v2');
const cases = JSON.parse(readFileSync(path.join(TINY, 'cases.json'), 'utf8')) as { target_layer: string; predicted: number[]; explicit_targets: number[] };
const MODEL = path.join(TINY, 'model.json');
const INPUTS = path.join(TINY, 'inputs.npy');
const MOBILENET_MODEL = ['--model', path.join(MOBILENET, 'state_dict.pth'), '--arch', 'mobilenet-v2', '--arch-param', 'widthMult=0.5'];

const work = tempDir('salgrid-explain-');
const out = (name: string) => path.join(work, 'out', name);

async function salgrid(...args: string[]): Promise<CliResult> {
  return cliAsync(args, work).done;
}


function maxDiff(actual: NpyArray, expected: NpyArray, offset = 0): number {
  let worst = 0;
  for (let i = 0; i < actual.data.length; i++) worst = Math.max(worst, Math.abs(Number(actual.data[i]) - Number(expected.data[offset + i])));
  return worst;
}

async function assertMaps(file: string, golden: string, tolerance = 2e-3): Promise<void> {
  const [actual, expected] = await Promise.all([readNpy(file), readNpy(golden)]);
  assert.equal(actual.dtype, 'float32');
  assert.deepEqual(actual.shape, expected.shape);
  const worst = maxDiff(actual, expected);
  assert.ok(worst <= tolerance, `${path.basename(file)}: max |map − ${path.basename(golden)}| is ${worst}`);
}

const targetLines = (stdout: string) => [...stdout.matchAll(/^(\S+): target class (\d+)/gm)].map((m) => [m[1], Number(m[2])]);

describe('salgrid explain', () => {
  const results: Record<string, CliResult> = {};
  const images = path.join(work, 'images');

  before(async () => {
    mkdirSync(images, { recursive: true });
    for (const [name, seed] of [['b.png', 11], ['a.png', 3]] as const) {
      const data = new Uint8Array(40 * 50 * 3).map((_, i) => (seed + i * 7) % 256);
      await writePng(path.join(images, name), { width: 50, height: 40, channels: 3, data });
    }
    // The successful runs side by side: each is its own process.
    const [predicted, explicit, folder, mobilenet, pictures, saliency] = await Promise.all([
      salgrid('explain', '--model', MODEL, '--input', INPUTS, '--method', 'gradcam', '--layer', cases.target_layer, '--out', out('x.npy'), '--backend', 'wasm'),
      salgrid('explain', '--model', MODEL, '--input', INPUTS, '--method', 'gradcam', '--layer', cases.target_layer, '--target', String(cases.explicit_targets[0]), '--out', out('explicit.npy'), '--backend', 'cpu'),
      salgrid('explain', '--model', MODEL, '--input', INPUTS, '--method', 'gradcam', '--param', `layer=${cases.target_layer}`, '--out', out('maps/'), '--backend', 'wasm', '--batch-size', '3'),
      salgrid('explain', ...MOBILENET_MODEL, '--input', path.join(MOBILENET, 'inputs.npy'), '--method', 'gradcam', '--out', out('mobilenet.npy'), '--backend', 'wasm'),
      salgrid('explain', ...MOBILENET_MODEL, '--classes', 'AD,CG,PS,ST', '--input-size', '96', '--input', images, '--method', 'gradcam', '--target', 'PS', '--out', out('pictures'), '--backend', 'wasm'),
      salgrid('explain', '--model', MODEL, '--input', INPUTS, '--method', 'saliency', '--param', 'sign=positive', '--out', out('saliency.npy'), '--backend', 'wasm'),
    ]);
    Object.assign(results, { predicted, explicit, folder, mobilenet, pictures, saliency });
  });

  it("writes pytorch-grad-cam's Grad-CAM maps [4, 64, 64] for the predicted classes (the must-show)", async () => {
    const { stdout } = ok(results.predicted);
    assert.match(stdout.split('\n')[0], /^backend: wasm on /);
    assert.deepEqual(targetLines(stdout), cases.predicted.map((c, i) => [`inputs.npy[${i}]`, c]));
    assert.match(stdout, /wrote .*x\.npy: gradcam at relu3 maps \[4, 64, 64\] \(float32/);
    await assertMaps(out('x.npy'), path.join(TINY, 'cam-gradcam-predicted.npy'));
  });

  it('explains the class --target names', async () => {
    const { stdout } = ok(results.explicit);
    assert.match(stdout.split('\n')[0], /^backend: cpu on /);
    assert.deepEqual(targetLines(stdout).map(([, c]) => c), cases.explicit_targets);
    await assertMaps(out('explicit.npy'), path.join(TINY, 'cam-gradcam-explicit.npy'));
  });

  it('fills a folder with one .npy [h, w] and one JET overlay per input, named image-000… for a .npy input', async () => {
    ok(results.folder);
    const dir = out('maps');
    const names = ['image-000', 'image-001', 'image-002', 'image-003'];
    assert.deepEqual(readdirSync(dir).sort(), names.flatMap((n) => [`${n}.npy`, `${n}.png`]));
    const golden = await readNpy(path.join(TINY, 'cam-gradcam-predicted.npy'));
    for (const [i, name] of names.entries()) {
      const map = await readNpy(path.join(dir, `${name}.npy`));
      assert.equal(map.dtype, 'float32');
      assert.deepEqual(map.shape, [64, 64]);
      assert.ok(maxDiff(map, golden, i * 64 * 64) <= 2e-3, `${name}.npy differs from the golden's image ${i}`);
      const overlay = await readImage(path.join(dir, `${name}.png`));
      assert.deepEqual([overlay.width, overlay.height, overlay.channels], [64, 64, 3]);
    }
  });

  it('loads a .pth through its architecture: Grad-CAM at its default layer (features.18) equals the reference', async () => {
    const { stdout } = ok(results.mobilenet);
    assert.match(stdout, /gradcam at features\.18 maps \[2, 96, 96\]/);
    await assertMaps(out('mobilenet.npy'), path.join(MOBILENET, 'gradcam.npy'));
  });

  it('explains image files by class name, overlaying each map on its image at the image’s size', async () => {
    const { stdout } = ok(results.pictures);
    assert.deepEqual(targetLines(stdout), [[path.join('images', 'a.png'), 2], [path.join('images', 'b.png'), 2]]);
    assert.match(stdout, /target class 2 \(PS\)/);
    const dir = out('pictures');
    assert.deepEqual(readdirSync(dir).sort(), ['a.npy', 'a.png', 'b.npy', 'b.png']);
    assert.deepEqual((await readNpy(path.join(dir, 'a.npy'))).shape, [96, 96]);
    const overlay = await readImage(path.join(dir, 'a.png'));
    assert.deepEqual([overlay.width, overlay.height, overlay.channels], [50, 40, 3]);
  });

  it("runs attribution explainers too: saliency's map with sign=positive is Captum's normalised one", async () => {
    const { stdout } = ok(results.saliency);
    assert.match(stdout, /wrote .*saliency\.npy: saliency maps \[4, 64, 64\]/);
    await assertMaps(out('saliency.npy'), path.join(TINY, 'attr-saliency-norm-positive.npy'));
  });

  it('says what is wrong in one line: unknown method, unknown layer (with the nearest names), bad --param, --layer without a layer param', async () => {
    const base = ['--input', INPUTS, '--backend', 'wasm'];
    const [unknownMethod, unknownLayer, unknownModule, dottedModule, badValue, unknownParam, badPair, twice, badTarget, layerless] = await Promise.all([
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcm', '--out', out('e1.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--layer', 'relu33', '--out', out('e2.npy')),
      salgrid('explain', ...MOBILENET_MODEL, '--input', path.join(MOBILENET, 'inputs.npy'), '--backend', 'wasm', '--method', 'gradcam', '--layer', 'features.81', '--out', out('e3.npy')),
      salgrid('explain', ...MOBILENET_MODEL, '--input', path.join(MOBILENET, 'inputs.npy'), '--backend', 'wasm', '--method', 'gradcam', '--layer', 'features_18', '--out', out('e4.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--param', 'eigenSmooth=maybe', '--out', out('e5.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--param', 'eigensmooth=true', '--out', out('e6.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--param', 'eigenSmooth', '--out', out('e7.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--layer', 'relu3', '--param', 'layer=relu2', '--out', out('e8.npy')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'gradcam', '--target', '9', '--out', out('e9/')),
      salgrid('explain', '--model', MODEL, ...base, '--method', 'saliency', '--layer', 'relu3', '--out', out('e10.npy')),
    ]);
    mistake(unknownMethod, /--method: unknown explainer "gradcm"; did you mean "gradcam"\?/);
    mistake(unknownLayer, /no layer named "relu33"; nearest: relu3\b/);
    mistake(unknownModule, /MobileNetV2 has no module features\.81; .*nearest in this model: features\.1, features\.8\b/);
    mistake(dottedModule, /MobileNetV2 has no module features_18: .*with dots.*nearest in this model: features\.18\b/);
    mistake(badValue, /--param eigenSmooth of gradcam must be a boolean, got "maybe"/);
    mistake(unknownParam, /--param eigensmooth: gradcam has no param "eigensmooth"; did you mean "eigenSmooth"\?/);
    mistake(badPair, /--param takes key=value/);
    mistake(twice, /--layer and --param layer=… both set the layer/);
    mistake(badTarget, /target 9 is not a class of this model: it has 4 classes/);
    mistake(layerless, /--layer does not apply to saliency, which has no layer param/);
    for (const name of ['e1.npy', 'e2.npy', 'e3.npy', 'e4.npy', 'e5.npy', 'e6.npy', 'e7.npy', 'e8.npy', 'e9', 'e10.npy']) assert.ok(!existsSync(out(name)), `no ${name} after a mistake`);
  });
});
