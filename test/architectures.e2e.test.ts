/**
 * Architecture plugins through the real CLI on the synthetic dataset:
 * training, prediction and classification tables, pretrained weights, and a
 * kill during training that resumes to the very weights of an uninterrupted run.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, cli, cliAsync, tempDir } from './helpers.ts';

const MOBILENET_PTH = path.join(ROOT, 'test/fixtures/golden/torchvision/mobilenet_v2/state_dict.pth');

function project(manifest: string): string {
  const dir = tempDir('salgrid-arch-');
  writeFileSync(path.join(dir, 'sweep.yaml'), manifest);
  return dir;
}

function sweep(options: { name?: string; perClass?: number; folds?: string; training: string; models: string; backend?: string }): string {
  return [
    `name: ${options.name ?? 'arch'}`,
    'dataset:',
    `  source: synthetic-hfus`,
    `  params: { perClass: ${options.perClass ?? 8}, size: 64, seed: 1 }`,
    '  imageSize: [64, 64]',
    `folds: ${options.folds ?? '{ k: 3, seed: 1, only: [1] }'}`,
    `training: ${options.training}`,
    'models:',
    options.models,
    `execution: { backend: ${options.backend ?? 'wasm'}, workers: { gpu: 1 } }`,
    '',
  ].join('\n');
}

const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;

function trainDirs(dir: string): string[] {
  const root = path.join(dir, 'runs/cache/train');
  return existsSync(root) ? readdirSync(root).map((key) => path.join(root, key)) : [];
}

describe('architectures end to end', () => {
  it('small-cnn reaches at least 90 % mean test accuracy on the synthetic dataset (64×64, 4 classes, 3 folds)', () => {
    const dir = tempDir('salgrid-accuracy-');
    writeFileSync(
      path.join(dir, 'accuracy.yaml'),
      [
        'name: accuracy',
        'dataset: { source: synthetic-hfus, params: { perClass: 40, size: 64, seed: 1 }, imageSize: [64, 64] }',
        'folds: { k: 3, seed: 1, stratify: true, validation: 0.15 }',
        'training: { epochs: 15, batchSize: 8, seed: 1, augment: { flip: horizontal }, optimizer: { adam: { learningRate: 0.001 } } }',
        'models: [small-cnn]',
        'execution: { backend: onnx:cpu }',
        '',
      ].join('\n'),
    );
    // Trained on the default engine; three folds take a minute or two on a busy 2-core machine.
    const result = cli(['run', 'accuracy.yaml'], dir, {}, 900_000);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const summary = readJson<{ model: string; accuracy: number; folds: number }[]>(path.join(dir, 'runs/accuracy/results/classification-summary.json'));
    const row = summary.find((r) => r.model === 'small-cnn');
    assert.ok(row, 'no classification summary for small-cnn');
    assert.equal(row.folds, 3);
    assert.ok(row.accuracy >= 0.9, `mean test accuracy ${row.accuracy}`);
    // Every train artifact holds the model, its card and the history, and no leftover checkpoints.
    for (const train of trainDirs(dir)) {
      const files = readdirSync(train).sort();
      assert.deepEqual(files, ['history.json', 'meta.json', 'model']);
      assert.deepEqual(readdirSync(path.join(train, 'model')).sort(), ['model.json', 'salgrid-model.json', 'weights.bin']);
      const card = readJson<{ architecture: { id: string }; classes: string[]; target: string }>(path.join(train, 'model/salgrid-model.json'));
      assert.equal(card.architecture.id, 'small-cnn');
      assert.deepEqual(card.classes, ['AD', 'CG', 'PS', 'ST']);
      assert.equal(card.target, 'features.3');
      assert.equal(readJson<unknown[]>(path.join(train, 'history.json')).length, 15);
    }
  });

  it('mobilenet-v2 (width 0.35) trains and predicts on wasm', () => {
    const dir = project(sweep({ training: '{ epochs: 1, batchSize: 4 }', models: '  - { id: mobilenet-v2, params: { widthMult: 0.35 } }' }));
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    assert.match(result.stdout + result.stderr, /wasm/);
    const rows = readJson<{ n: number; accuracy: number }[]>(path.join(dir, 'runs/arch/results/classification.json'));
    assert.equal(rows.length, 1);
    assert.ok(rows[0].n > 0);
    const [train] = trainDirs(dir);
    const card = readJson<{ architecture: { params: { widthMult: number } } }>(path.join(train, 'model/salgrid-model.json'));
    assert.equal(card.architecture.params.widthMult, 0.35);
  });

  it('starts from a PyTorch state dict under a fresh head, and keys the train task on the file’s contents', () => {
    const dir = project(sweep({ training: `{ epochs: 1, batchSize: 4, pretrained: ${JSON.stringify(MOBILENET_PTH)} }`, models: '  - { id: mobilenet-v2, params: { widthMult: 0.5 } }', backend: 'onnx:cpu' }));
    const plan = cli(['plan', 'sweep.yaml', '--json'], dir);
    assert.equal(plan.code, 0, plan.stderr);
    const train = (JSON.parse(plan.stdout) as { tasks: { stage: string; files?: [string, string][] }[] }).tasks.find((t) => t.stage === 'train');
    assert.ok(train?.files?.some(([, hash]) => /^[0-9a-f]{64}$/.test(hash)), 'the pretrained file is not part of the train key');
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const card = readJson<{ origin: { trained: { pretrained: string } } }>(path.join(trainDirs(dir)[0], 'model/salgrid-model.json'));
    assert.equal(card.origin.trained.pretrained, MOBILENET_PTH);
  });

  it('pretrained weights for another configuration are one clear error', () => {
    const dir = project(sweep({ training: `{ epochs: 1, batchSize: 4, pretrained: ${JSON.stringify(MOBILENET_PTH)} }`, models: '  - { id: mobilenet-v2, params: { widthMult: 0.35 } }', backend: 'onnx:cpu' }));
    const result = cli(['run', 'sweep.yaml'], dir);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr + result.stdout, /widthMult=0\.5/);
    assert.doesNotMatch(result.stderr, /\n\s+at /);
  });

  it('pretrained: imagenet without imported weights names the file to download and the import command', () => {
    const store = tempDir('salgrid-weights-');
    const dir = project(sweep({ training: '{ epochs: 1, pretrained: imagenet }', models: '  - resnet18' }));
    const result = cli(['run', 'sweep.yaml'], dir, { SALGRID_WEIGHTS: store });
    assert.equal(result.code, 1, result.stderr + result.stdout);
    const message = result.stderr.trim();
    assert.match(message, new RegExp(path.join(store, 'resnet18-imagenet').replace(/[/\\.]/g, '\\$&')));
    assert.match(message, /https:\/\/download\.pytorch\.org\/models\/resnet18-f37072fd\.pth/);
    assert.match(message, /salgrid weights import resnet18 resnet18-f37072fd\.pth/);
    assert.doesNotMatch(message, /\n\s+at /);
  });

  it('a kill during training resumes from the last completed epoch and ends with the weights of an uninterrupted run', async () => {
    const manifest = sweep({ perClass: 12, training: '{ epochs: 6, batchSize: 8, seed: 3, augment: { flip: horizontal } }', models: '  - small-cnn' });
    const reference = project(manifest);
    const full = cli(['run', 'sweep.yaml'], reference);
    assert.equal(full.code, 0, full.stderr + full.stdout);

    const dir = project(manifest);
    const staging = path.join(dir, 'runs/cache/.staging');
    const checkpointEpoch = (): { epoch: number; history: unknown[] } | undefined => {
      if (!existsSync(staging)) return undefined;
      for (const name of readdirSync(staging).filter((n) => n.startsWith('train-'))) {
        const file = path.join(staging, name, 'checkpoint.json');
        try {
          return readJson<{ epoch: number; history: unknown[] }>(file);
        } catch {
          // not written yet
        }
      }
      return undefined;
    };
    const run = cliAsync(['run', 'sweep.yaml'], dir);
    let seen: { epoch: number; history: unknown[] } | undefined;
    while (!((seen = checkpointEpoch()) && seen.epoch >= 2)) {
      const finished = await Promise.race([sleep(20).then(() => false), run.done.then(() => true)]);
      assert.ok(!finished, 'the run finished before it could be killed');
    }
    run.child.kill('SIGKILL');
    await run.done;
    const atKill = checkpointEpoch();
    assert.ok(atKill && atKill.epoch >= 2 && atKill.epoch < 6, `killed at epoch ${atKill?.epoch}`);

    const resumed = cli(['run', 'sweep.yaml'], dir);
    assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
    const [got] = trainDirs(dir);
    const [want] = trainDirs(reference);
    assert.equal(path.basename(got), path.basename(want));
    assert.ok(readFileSync(path.join(got, 'model/weights.bin')).equals(readFileSync(path.join(want, 'model/weights.bin'))), 'resumed weights differ from an uninterrupted run');
    // The epochs before the kill were not run again: their records (wall-clock seconds included) are the checkpoint's.
    const history = readJson<unknown[]>(path.join(got, 'history.json'));
    assert.equal(history.length, 6);
    assert.deepEqual(history.slice(0, atKill.epoch), atKill.history);
    assert.deepEqual(readJson(path.join(dir, 'runs/arch/results/classification.json')), readJson(path.join(reference, 'runs/arch/results/classification.json')));
  });
});
