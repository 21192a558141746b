import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { resolveManifest } from '../src/core/manifest/resolve.ts';
import { ManifestSource } from '../src/core/manifest/source.ts';
import { buildPlan, type Plan } from '../src/core/plan/planner.ts';
import { onnxArchitecture } from '../src/plugins/architectures/onnx.ts';
import { Registry } from '../src/core/plugins/registry.ts';
import { Store } from '../src/core/store/store.ts';
import fixtures from './fixtures/plugins/points.ts';
import { cli, fixtureManifest, makePointsDataset, tempDir } from './helpers.ts';

const range = (n: number, scale = 1) => `[${Array.from({ length: n }, (_, i) => (i + 1) * scale).join(', ')}]`;

/** The study's grid shape: 4 models × 5 folds × 12 explainer variants × 8 metric variants. */
const studyGrid = fixtureManifest({
  name: 'study-shape',
  k: 5,
  models: `  - { id: centroid, params: { rate: ${range(4, 0.2)} } }`,
  explainers: `  - { id: difference, params: { power: ${range(12)} } }`,
  metrics: `  - { id: mass, params: { threshold: ${range(8, 0.1)} } }`,
});

type PlanJson = { stages: { stage: string; total: number }[]; tasks: { key: string; stage: string; cell: Record<string, unknown>; inputs: string[] }[] };

describe('planner', () => {
  it('expands the study-sized grid into its stage table, without the data', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'study.yaml'), studyGrid);
    const result = cli(['plan', 'study.yaml', '--json'], dir);
    assert.equal(result.code, 0, result.stderr);
    const plan = JSON.parse(result.stdout) as PlanJson;
    const totals = Object.fromEntries(plan.stages.map((s) => [s.stage, s.total]));
    assert.deepEqual(totals, { index: 1, split: 1, train: 20, predict: 20, explain: 240, score: 1920, aggregate: 1, report: 1 });
    assert.equal(new Set(plan.tasks.map((t) => t.key)).size, plan.tasks.length, 'keys are unique');
  });

  it('gives the same keys for the same manifest and data, from any folder', () => {
    const keys = () => {
      const dir = tempDir();
      makePointsDataset(path.join(dir, 'data'));
      writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
      return (JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson).tasks.map((t) => t.key);
    };
    assert.deepEqual(keys(), keys());
  });

  it('keys the index on the data files’ contents', () => {
    const dir = tempDir();
    makePointsDataset(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest());
    const before = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    writeFileSync(path.join(dir, 'data', 'class0', 'item00.json'), '[9,9,9,9,9,9,9,9]');
    const after = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    const changed = after.tasks.filter((t, i) => t.key !== before.tasks[i].key);
    assert.equal(changed.length, after.tasks.length, 'every task depends on the index');
  });

  it('removes excluded cells and only those', () => {
    const dir = tempDir();
    writeFileSync(path.join(dir, 'sweep.yaml'), fixtureManifest({ extra: 'exclude:\n  - { explainer: "difference[power=2]", metric: zeroing }\n  - { fold: 3, explainer: "difference[power=1]" }\n' }));
    const plan = JSON.parse(cli(['plan', 'sweep.yaml', '--json'], dir).stdout) as PlanJson;
    const scores = plan.tasks.filter((t) => t.stage === 'score').map((t) => t.cell);
    assert.equal(scores.length, 12 - 3 - 2);
    assert.ok(!scores.some((c) => c.explainer === 'difference[power=2]' && c.metric === 'zeroing'));
    assert.ok(!scores.some((c) => c.fold === 3 && c.explainer === 'difference[power=1]'));
    assert.equal(plan.tasks.filter((t) => t.stage === 'explain').length, 5);
  });
});

describe('planner: an architecture that only imports (onnx with its file param)', () => {
  it('plans imports, keyed by the file and not by training:', async () => {
    const registry = new Registry();
    for (const plugin of [...fixtures, onnxArchitecture]) registry.register(plugin, 'fixture');
    const dir = tempDir();
    makePointsDataset(path.join(dir, 'data'));
    writeFileSync(path.join(dir, 'model.onnx'), 'an exported network');
    const plan = (epochs: number) => {
      const text = `name: onnx\ndataset:\n  source: points\n  params: { dir: data }\nfolds: { k: 2 }\ntraining: { epochs: ${epochs} }\nmodels:\n  - { id: onnx, params: { file: model.onnx } }\nexplainers: [difference]\nmetrics: [mass]\n`;
      return buildPlan(resolveManifest(ManifestSource.parse(path.join(dir, 'm.yaml'), text), registry), registry, new Store(path.join(dir, 'runs', 'cache')));
    };
    const [short, long] = [await plan(3), await plan(50)];
    const trains = (p: Plan) => p.tasks.filter((t) => t.stage === 'train');
    assert.deepEqual(trains(short).map((t) => t.label), ['import onnx fold 1', 'import onnx fold 2']);
    assert.deepEqual(trains(long).map((t) => t.key), trains(short).map((t) => t.key), 'training.epochs does not key it');
    assert.deepEqual(trains(short)[0].material.files?.map(([file]) => file), ['model.onnx'], 'the file does');
  });
});

describe('planner: models trained elsewhere (trained:)', () => {
  const registry = new Registry();
  for (const plugin of fixtures) registry.register(plugin, 'fixture');

  /** A points project with one model file per fold (a tfjs model folder for fold 3); the manifest's lines 10 and 13 hold the trained: fields. */
  function project(): string {
    const dir = tempDir();
    makePointsDataset(path.join(dir, 'data'));
    mkdirSync(path.join(dir, 'models/fold3'), { recursive: true });
    writeFileSync(path.join(dir, 'models/fold1.pth'), 'weights of fold 1');
    writeFileSync(path.join(dir, 'models/fold2.pth'), 'weights of fold 2');
    writeFileSync(path.join(dir, 'models/fold3/model.json'), JSON.stringify({ modelTopology: {}, weightsManifest: [{ paths: ['weights.bin'], weights: [] }] }));
    writeFileSync(path.join(dir, 'models/fold3/weights.bin'), 'weights of fold 3');
    return dir;
  }

  async function plan(dir: string, epochs = 3): Promise<Plan> {
    const text = `name: imported
dataset:
  source: points
  params: { dir: data }
folds: { k: 3 }
training: { epochs: ${epochs} }
models:
  - id: centroid
    name: file
    trained: models/fold{fold}.pth
  - id: centroid
    name: folder
    trained: "models/fold{fold}"
explainers: [difference]
metrics: [mass]
exclude:
  - { model: file, fold: 3 }
  - { model: folder, fold: 1 }
  - { model: folder, fold: 2 }
`;
    const manifest = resolveManifest(ManifestSource.parse(path.join(dir, 'm.yaml'), text), registry);
    return buildPlan(manifest, registry, new Store(path.join(dir, 'runs', 'cache')));
  }

  const imports = (p: Plan) => p.tasks.filter((t) => t.stage === 'train');
  const keysOf = (p: Plan, stage: string) => p.tasks.filter((t) => t.stage === stage).map((t) => t.key);

  it('imports instead of training: labelled as imports, keyed by each fold’s files and not by training:', async () => {
    const dir = project();
    const before = await plan(dir);
    assert.equal(before.missingData, undefined);
    assert.deepEqual(imports(before).map((t) => t.label), ['import file fold 1', 'import file fold 2', 'import folder fold 3']);
    assert.deepEqual(imports(before).map((t) => t.material.files?.map(([file]) => file)), [['models/fold1.pth'], ['models/fold2.pth'], ['models/fold3/model.json', 'models/fold3/weights.bin']]);
    assert.deepEqual(imports(before).map((t) => t.material.params), [1, 2, 3].map((fold) => ({ model: { id: 'centroid', params: { rate: 0.5, delayMs: 0 } }, imageSize: [224, 224], fold, trained: fold < 3 ? `models/fold${fold}.pth` : 'models/fold3' })));

    const longer = await plan(dir, 50);
    assert.deepEqual(keysOf(longer, 'train'), keysOf(before, 'train'), 'training.epochs does not key an import');
    assert.deepEqual(keysOf(longer, 'score'), keysOf(before, 'score'), 'nor anything downstream of it');

    writeFileSync(path.join(dir, 'models/fold2.pth'), 'fold 2 trained again');
    writeFileSync(path.join(dir, 'models/fold3/weights.bin'), 'fold 3 trained again');
    const after = await plan(dir);
    assert.deepEqual(
      keysOf(after, 'train').map((key, i) => key === keysOf(before, 'train')[i]),
      [true, false, false],
      'a new file re-imports its fold alone (a tfjs model’s weights file included)',
    );
  });

  it('says which fold’s file is missing, at the trained: field, before anything runs', async () => {
    const dir = project();
    rmSync(path.join(dir, 'models/fold2.pth'));
    const { missingData } = await plan(dir);
    assert.equal(missingData, `${path.join(dir, 'm.yaml')}:10:14: /models/0/trained: no trained model of file for fold 2: models/fold2.pth (${path.join(dir, 'models/fold2.pth')}) does not exist; put each fold's model there, or fix the path.`);
    rmSync(path.join(dir, 'models/fold3/weights.bin'));
    rmSync(path.join(dir, 'models/fold1.pth'));
    const second = await plan(dir);
    assert.match(second.missingData!, /:10:14: \/models\/0\/trained: no trained model of file for fold 1 \(nor for fold 2\): models\/fold1\.pth/);
  });

  it('names a tfjs model’s missing weights file at its model’s trained: field', async () => {
    const dir = project();
    rmSync(path.join(dir, 'models/fold3/weights.bin'));
    const { missingData } = await plan(dir);
    assert.match(missingData!, /m\.yaml:13:14: \/models\/1\/trained: the trained model of folder for fold 3 cannot be read: Weights file listed in .*model\.json not found: .*weights\.bin/);
  });
});
