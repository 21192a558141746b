/**
 * Dataset images as network input, batch by batch. Files are decoded once and
 * kept as their raw samples (a 224×224 RGB image is 150 kB, so even the
 * study's dataset stays small); every batch is then resized, brought to three
 * channels and scaled exactly as `preprocessImages` does, so training,
 * prediction and explanation see identical inputs.
 */
import * as tf from '@tensorflow/tfjs';
import { readImage, type RawImage } from '../io/image-io.ts';
import { normaliseUnit, preprocessImages, type Preprocessing } from './preprocess.ts';

export class ImageBatches {
  private readonly raw = new Map<number, RawImage>();

  /** `files` are absolute image paths; `preprocessing` is the model's. */
  constructor(readonly files: readonly string[], readonly preprocessing: Preprocessing) {}

  get count(): number {
    return this.files.length;
  }

  /** The decoded file (decoded once, then kept). */
  async image(index: number): Promise<RawImage> {
    let image = this.raw.get(index);
    if (!image) {
      image = await readImage(this.files[index]);
      this.raw.set(index, image);
    }
    return image;
  }

  /** The images in [0, 1], resized to the network's size, [n, h, w, 3] (before normalisation: training augments here). */
  async unit(indices: readonly number[]): Promise<tf.Tensor4D> {
    const images = await Promise.all(indices.map((i) => this.image(i)));
    const unit: Preprocessing = { size: this.preprocessing.size, normalisation: { kind: 'unit' } };
    return tf.tidy(() => tf.concat(images.map((image) => preprocessImages(rawTensor(image), unit, { bitDepth: image.bitDepth })), 0) as tf.Tensor4D);
  }

  /** The network's input for these images, normalised. */
  async input(indices: readonly number[]): Promise<tf.Tensor4D> {
    const unit = await this.unit(indices);
    const input = this.normalise(unit);
    unit.dispose();
    return input;
  }

  /** [0, 1] images → the network's input. */
  normalise(unit: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => normaliseUnit(unit, this.preprocessing.normalisation));
  }

  /** Runs `fn` on consecutive batches of the network's input, disposing each. */
  async forEachBatch(batchSize: number, fn: (input: tf.Tensor4D, indices: number[]) => Promise<void> | void): Promise<void> {
    for (let start = 0; start < this.count; start += batchSize) {
      const indices = Array.from({ length: Math.min(batchSize, this.count - start) }, (_, i) => start + i);
      const input = await this.input(indices);
      try {
        await fn(input, indices);
      } finally {
        input.dispose();
      }
    }
  }
}

/** A decoded image as a [h, w, c] float tensor of its raw sample values. */
export function rawTensor(image: RawImage): tf.Tensor3D {
  return tf.tensor3d(Float32Array.from(image.data), [image.height, image.width, image.channels], 'float32');
}
