/**
 * The predict stage's loop, whatever the architecture: a loaded model's
 * class probabilities for a fold's test images, batch by batch through its
 * engine, preprocessed as the model says.
 */
import * as tf from '@tensorflow/tfjs';
import type { ArchitecturePlugin, FoldData, LoadedModel, Prediction } from '../plugins/types.ts';
import { ImageBatches } from './image-batches.ts';

const PREDICT_BATCH = 16;

export async function predictTestImages(loaded: LoadedModel, data: FoldData, signal: AbortSignal, progress: (done: number, total: number, note?: string) => void): Promise<Prediction[]> {
  const images = new ImageBatches(data.test.map((item) => data.resolve(item.image)), loaded.preprocessing);
  const predictions: Prediction[] = [];
  await images.forEachBatch(PREDICT_BATCH, async (input, indices) => {
    if (signal.aborted) throw signal.reason;
    const output = await loaded.engine.scores(input, { beforeSoftmax: !loaded.outputsProbabilities });
    const probabilities = (loaded.outputsProbabilities ? output.arraySync() : tf.tidy(() => tf.softmax(output).arraySync())) as number[][];
    output.dispose();
    indices.forEach((index, row) => predictions.push({ id: data.test[index].id, probabilities: probabilities[row] }));
    progress(predictions.length, images.count, 'images');
  });
  return predictions;
}

/** An architecture's predict stage: the model its train task wrote, loaded with `load`, over the fold's test images; freed after. */
export function predictStage(load: (dir: string) => Promise<LoadedModel>): ArchitecturePlugin['predict'] {
  return async (ctx) => {
    const loaded = await load(ctx.modelDir);
    try {
      return await predictTestImages(loaded, ctx.data, ctx.signal, ctx.progress);
    } finally {
      loaded.engine.dispose();
      loaded.model?.dispose();
    }
  };
}
