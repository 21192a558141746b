import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UserError } from '../src/core/errors.ts';
import { resolveManifest } from '../src/core/manifest/resolve.ts';
import { ManifestSource } from '../src/core/manifest/source.ts';
import { Registry } from '../src/core/plugins/registry.ts';
import fixtures from './fixtures/plugins/points.ts';
import { manifestProblems, resolveText } from './helpers.ts';

const registry = new Registry();
for (const plugin of fixtures) registry.register(plugin, 'fixture');

const resolve = (text: string) => resolveText(registry, text);

const problems = (text: string): string[] => manifestProblems(registry, text);

const base = `name: demo
dataset:
  source: points
  params: { dir: data }
models: [centroid]
`;

describe('manifest validation', () => {
  it('reports three mistakes in different places at once, each with line:col and a hint', () => {
    const text = `name: demo
dataset:
  source: points
  params: { dir: data }
folds: { k: 1 }
models:
  - centroid
explainers:
  - id: difference
    params:
      powr: 2
metrics:
  - mas
`;
    const found = problems(text);
    assert.equal(found.length, 3, found.join('\n'));
    assert.match(found[0], /^m\.yaml:5:13: \/folds\/k: must be >= 2/);
    assert.match(found[1], /^m\.yaml:11:7: \/explainers\/0\/params\/powr: unknown field "powr"; did you mean "power"\?/);
    assert.match(found[2], /^m\.yaml:13:5: \/metrics\/0: unknown metric "mas"; did you mean "mass"\? \(known: mass, zeroing\)/);
  });

  it('suggests the closest plugin id for a typo and lists the known ones', () => {
    const [problem] = problems(base.replace('[centroid]', '[centroids]'));
    assert.match(problem, /m\.yaml:5:10: \/models\/0: unknown architecture "centroids"; did you mean "centroid"\?/);
  });

  it('points at the key of an unknown top-level field', () => {
    const [problem] = problems(`${base}trainig: { epochs: 3 }\n`);
    assert.match(problem, /^m\.yaml:6:1: \/trainig: unknown field "trainig"; did you mean "training"\?/);
  });

  it('reports YAML syntax errors with their position', () => {
    assert.throws(() => resolve('name: [demo\n'), (error: UserError) => /YAML/.test(error.message) && /m\.yaml:\d+:\d+: YAML syntax/.test(error.details[0]));
  });

  it('names a missing required field', () => {
    const [problem] = problems('name: demo\nmodels: [centroid]\n');
    assert.match(problem, /missing required field "dataset"/);
  });

  it('fills in defaults', () => {
    const manifest = resolve(base);
    assert.deepEqual(manifest.folds, { k: 5, seed: 1, stratify: true, validation: 0.15 });
    assert.equal(manifest.training.epochs, 10);
    assert.deepEqual(manifest.training.optimizer, { sgd: { learningRate: 0.001, momentum: 0.9, nesterov: false, weightDecay: 0 } });
    assert.deepEqual(manifest.execution.workers, { gpu: 'auto', cpu: 2 });
    assert.deepEqual(manifest.models[0].params, { rate: 0.5, delayMs: 0 });
    assert.deepEqual(manifest.dataset.imageSize, [224, 224]);
  });
});

describe('grid expansion', () => {
  it('makes a list a grid axis where the param takes no list, labelled by the param', () => {
    const manifest = resolve(`${base}explainers:\n  - { id: difference, params: { power: [1, 2, 3], delayMs: 5 } }\n`);
    assert.deepEqual(
      manifest.explainers.map((v) => [v.label, v.params.power, v.params.delayMs]),
      [
        ['difference[power=1]', 1, 5],
        ['difference[power=2]', 2, 5],
        ['difference[power=3]', 3, 5],
      ],
    );
  });

  it('crosses several axes, and { grid: [...] } makes an axis explicitly', () => {
    const manifest = resolve(`${base}explainers:\n  - { id: difference, params: { power: { grid: [1, 2] }, delayMs: [0, 10] } }\n`);
    assert.equal(manifest.explainers.length, 4);
    assert.deepEqual(manifest.explainers.map((v) => v.label), ['difference[power=1,delayMs=0]', 'difference[power=1,delayMs=10]', 'difference[power=2,delayMs=0]', 'difference[power=2,delayMs=10]']);
  });

  it('keeps a list as a value where the param schema accepts one', () => {
    const listRegistry = new Registry();
    for (const plugin of fixtures) listRegistry.register(plugin, 'fixture');
    listRegistry.register({
      kind: 'explainer',
      id: 'layers',
      version: '1',
      description: 'takes a list param',
      params: { type: 'object', properties: { layer: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] } } },
      explain: async () => {},
    });
    const manifest = resolveManifest(
      ManifestSource.parse('m.yaml', `${base}explainers:\n  - { id: layers, params: { layer: [a, b] } }\n  - { id: layers, params: { layer: { grid: [a, b] } } }\n`),
      listRegistry,
    );
    assert.deepEqual(manifest.explainers.map((v) => v.params.layer), [['a', 'b'], 'a', 'b']);
  });

  it('points a bad axis value at its element', () => {
    const [problem] = problems(`${base}explainers:\n  - { id: difference, params: { power: [1, two] } }\n`);
    assert.match(problem, /^m\.yaml:7:44: \/explainers\/0\/params\/power\/1: must be a number, got "two"/);
  });

  it('rejects an exclude rule naming nothing in the grid, with a suggestion', () => {
    const [problem] = problems(`${base}explainers: [difference]\nexclude:\n  - { model: centroid, explainer: diference }\n`);
    assert.match(problem, /\/exclude\/0\/explainer: no explainer "diference" in this grid; did you mean "difference"\?/);
  });

  it('rejects a repeated entry', () => {
    const [problem] = problems(`${base}explainers: [difference, difference]\n`);
    assert.match(problem, /\/explainers\/1: this entry repeats explainer "difference"/);
  });

  it('rejects an entry that is another one under a new name (its tasks would be the same tasks)', () => {
    const [problem] = problems(`${base}explainers:\n  - difference\n  - { id: difference, name: again }\n`);
    assert.match(problem, /\/explainers\/1: this entry is explainer "difference" again under another name \(same id and params\)/);
  });
});

describe('trained: on a model entry', () => {
  const withTrained = (trained: string, folds = '') => `name: demo
dataset:
  source: points
  params: { dir: data }
${folds}models:
  - id: centroid
    trained: ${trained}
`;

  it('resolves per model variant, with where it is written for errors found at plan time', () => {
    const manifest = resolve(withTrained('"models/{model}/fold{fold}.bin"'));
    assert.deepEqual(manifest.models[0].trained, { pattern: 'models/{model}/fold{fold}.bin', pointer: '/models/0/trained', where: 'm.yaml:7:14' });
    assert.deepEqual((manifest.data.models as unknown[])[0], { id: 'centroid', label: 'centroid', params: { rate: 0.5, delayMs: 0 }, trained: 'models/{model}/fold{fold}.bin' });
  });

  it('needs {fold} when the sweep has several folds, at the trained: field', () => {
    const [problem] = problems(withTrained('models/centroid.bin'));
    assert.match(problem, /^m\.yaml:7:14: \/models\/0\/trained: "models\/centroid\.bin" names one file for all 5 folds, but each fold has its own model; add \{fold\} \(the 1-based fold number\), e\.g\. models\/centroid-fold\{fold\}\.bin$/);
    // One fold: one file is enough.
    assert.equal(resolve(withTrained('models/centroid.bin', 'folds: { k: 5, only: [2] }\n')).models[0].trained?.pattern, 'models/centroid.bin');
  });

  it('names an unknown placeholder, once, with the closest known one', () => {
    const found = problems(withTrained('"models/{folds}.bin"'));
    assert.equal(found.length, 1, found.join('\n'));
    assert.match(found[0], /^m\.yaml:7:14: \/models\/0\/trained: unknown placeholder \{folds\} in "models\/\{folds\}\.bin"; did you mean \{fold\}\? \(trained: takes \{fold\}, the 1-based fold number, and \{model\}, this entry’s label\)$/);
  });

  it('belongs to model entries only', () => {
    const [problem] = problems(`${base}explainers:\n  - { id: difference, trained: "x{fold}" }\n`);
    assert.match(problem, /^m\.yaml:7:\d+: \/explainers\/0\/trained: unknown field "trained"/);
  });
});
