/**
 * `importTrained` of the built-in architectures (a fold's model from
 * `trained:`): a tfjs model or a PyTorch state dict becomes a model folder
 * with its card, weights unchanged; a head of another size than the
 * dataset's classes is one sentence naming both. The sweep around it is in
 * trained-models.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../src/core/errors.ts';
import { loadLayersModel, saveLayersModel } from '../src/core/io/model-io.ts';
import { writeStateDict } from '../src/core/io/pytorch-state-dict-write.ts';
import type { ImportContext, Params } from '../src/core/plugins/types.ts';
import { withSeededMathRandom } from '../src/core/random.ts';
import { writeFileAtomic } from '../src/core/store/atomic.ts';
import { MODEL_CARD, TRAINED_MODEL_DIR, saveModelWithCard, type ModelCard, type TfjsArchitecture } from '../src/core/tensor/tfjs-architecture.ts';
import { exportTorchWeights } from '../src/core/tensor/torch-weights.ts';
import { mobileNetV2 } from '../src/plugins/architectures/mobilenet-v2.ts';
import { smallCnn } from '../src/plugins/architectures/small-cnn.ts';
import { tempDir } from './helpers.ts';

const SIZE: [number, number] = [32, 32];

/** What the train stage hands importTrained for fold 2 of a dataset with these classes. */
function context(params: Params, file: string, classes: string[]): ImportContext {
  const out = tempDir('salgrid-import-');
  return {
    params,
    out,
    manifestDir: path.dirname(file),
    progress: () => {},
    warn: () => {},
    signal: new AbortController().signal,
    writeFile: (relative, data) => writeFileAtomic(path.join(out, relative), data),
    data: { fold: 2, classes, train: [], val: [], test: [], resolve: (p) => p, imageSize: SIZE },
    file,
  };
}

const weightsOf = (model: tf.LayersModel) => model.getWeights().map((w) => Array.from(w.dataSync()));

async function imported(plugin: TfjsArchitecture, ctx: ImportContext): Promise<{ card: ModelCard; weights: number[][] }> {
  await plugin.importTrained(ctx);
  const folder = path.join(ctx.out, TRAINED_MODEL_DIR);
  const model = await loadLayersModel(folder);
  try {
    return { card: JSON.parse(readFileSync(path.join(folder, MODEL_CARD), 'utf8')) as ModelCard, weights: weightsOf(model) };
  } finally {
    model.dispose();
  }
}

describe('importTrained (built-in architectures)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('takes a tfjs model folder as it is, into a model folder whose card says where it came from', async () => {
    const params = { width: 4, blocks: 2 };
    const model = withSeededMathRandom(3, () => smallCnn.build(params, 3, SIZE));
    const dir = tempDir();
    await saveLayersModel(model, path.join(dir, 'fold2'));
    const { card, weights } = await imported(smallCnn, context(params, path.join(dir, 'fold2'), ['AD', 'CG', 'PS']));
    assert.deepEqual(weights, weightsOf(model));
    assert.deepEqual(card.origin, { imported: 'fold2', fold: 2 });
    assert.deepEqual({ architecture: card.architecture.id, params: card.architecture.params, classes: card.classes, size: card.preprocessing.size }, { architecture: 'small-cnn', params: { width: 4, blocks: 2, dropout: 0 }, classes: ['AD', 'CG', 'PS'], size: SIZE });

    await assert.rejects(
      smallCnn.importTrained(context(params, path.join(dir, 'fold2', 'model.json'), ['AD', 'CG', 'PS', 'ST'])),
      (error: Error) => error instanceof UserError && error.message === `${path.join(dir, 'fold2', 'model.json')} holds a 3-class head, but the dataset has 4 classes (AD, CG, PS, ST); give the model of fold 2 trained on this dataset's classes.`,
    );
    model.dispose();
  });

  it('refuses a salgrid model made with other params or for other classes', async () => {
    const model = withSeededMathRandom(3, () => smallCnn.build({ width: 4, blocks: 2 }, 2, SIZE));
    const dir = tempDir();
    const card: ModelCard = { format: 1, architecture: { id: 'small-cnn', version: '3', params: { width: 4, blocks: 2, dropout: 0 } }, classes: ['CG', 'AD'], preprocessing: { size: SIZE, normalisation: { kind: 'unit' } }, target: 'features.1', origin: {} };
    await saveModelWithCard(model, card, dir);
    await assert.rejects(smallCnn.importTrained(context({ width: 8, blocks: 2 }, dir, ['AD', 'CG'])), /is a small-cnn made with params \{"blocks":2,"dropout":0,"width":4\}, but this model entry resolves to \{"blocks":2,"dropout":0,"width":8\}/);
    await assert.rejects(smallCnn.importTrained(context({ width: 4, blocks: 2 }, dir, ['AD', 'CG'])), /was made for the classes CG, AD, but the dataset's are AD, CG/);
    model.dispose();
  });

  it('reads a PyTorch state dict, keeping num_batches_tracked', async () => {
    const params = { widthMult: 0.1 };
    const model = withSeededMathRandom(5, () => mobileNetV2.build(params, 4, SIZE));
    const file = path.join(tempDir(), 'fold2.pth');
    await writeStateDict(file, exportTorchWeights(model, { numBatchesTracked: 42 }));
    const { card, weights } = await imported(mobileNetV2, context(params, file, ['AD', 'CG', 'PS', 'ST']));
    assert.deepEqual(weights, weightsOf(model));
    assert.deepEqual(card.origin, { imported: 'fold2.pth', fold: 2, batchesTracked: 42 });
    await assert.rejects(mobileNetV2.importTrained(context(params, file, ['AD', 'CG'])), /fold2\.pth holds a 4-class head, but the dataset has 2 classes \(AD, CG\)/);
    model.dispose();
  });
});
