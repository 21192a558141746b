/**
 * `scorecam`: Score-CAM — each channel, upsampled (align-corners bilinear) and
 * min-max scaled, masks the input; the channel weights are the softmax over
 * channels of the masked inputs' target logits.
 *
 * The masks are made on typed arrays: 1,280 of them at 224×224 per image for
 * MobileNetV2, as many elements as the forward passes read, and a loop over
 * them costs a fraction of the same work as tensor ops on any tfjs backend.
 */
import * as tf from '@tensorflow/tfjs';
import { batchSizeParam, channelWeighted, defineCam, scoresOf } from './cam-base.ts';

/** Source rows (or columns) and weights of an align-corners bilinear resize from `from` to `to` samples. */
interface Interpolation {
  low: Int32Array;
  high: Int32Array;
  weight: Float32Array;
}

function alignCornersWeights(from: number, to: number): Interpolation {
  const low = new Int32Array(to);
  const high = new Int32Array(to);
  const weight = new Float32Array(to);
  const scale = to > 1 ? (from - 1) / (to - 1) : 0;
  for (let j = 0; j < to; j++) {
    const source = j * scale;
    low[j] = Math.floor(source);
    high[j] = Math.min(low[j] + 1, from - 1);
    weight[j] = source - low[j];
  }
  return { low, high, weight };
}

interface MaskShape {
  h: number;
  w: number;
  channels: number;
  height: number;
  width: number;
  depth: number;
  start: number;
  count: number;
  rows: Interpolation;
  cols: Interpolation;
}

/**
 * Channels [start, start + count) of one image's activations (h × w ×
 * channels), each upsampled to height × width, min-max scaled (+1e-8 in the
 * denominator, as the reference) and multiplied into the image: [count,
 * height, width, depth].
 */
function maskedImages(maps: Float32Array, image: Float32Array, shape: MaskShape): Float32Array {
  const { h, w, channels, height, width, depth, start, count, rows, cols } = shape;
  const out = new Float32Array(count * height * width * depth);
  const upsampled = new Float32Array(height * width);
  const across = new Float32Array(h * width);
  for (let k = 0; k < count; k++) {
    const c = start + k;
    // Along the width first, then the height: h × width, then height × width.
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < width; x++) {
        const left = maps[(y * w + cols.low[x]) * channels + c];
        const right = maps[(y * w + cols.high[x]) * channels + c];
        across[y * width + x] = left + (right - left) * cols.weight[x];
      }
    }
    let low = Infinity;
    let high = -Infinity;
    for (let y = 0; y < height; y++) {
      const top = rows.low[y] * width;
      const bottom = rows.high[y] * width;
      const t = rows.weight[y];
      for (let x = 0; x < width; x++) {
        const value = across[top + x] + (across[bottom + x] - across[top + x]) * t;
        upsampled[y * width + x] = value;
        if (value < low) low = value;
        if (value > high) high = value;
      }
    }
    const range = Math.fround(Math.fround(high - low) + 1e-8);
    const base = k * height * width * depth;
    for (let p = 0; p < height * width; p++) {
      const mask = Math.fround(Math.fround(upsampled[p] - low) / range);
      for (let d = 0; d < depth; d++) out[base + p * depth + d] = mask * image[p * depth + d];
    }
  }
  return out;
}

export const scorecam = defineCam({
  id: 'scorecam',
  version: '1',
  description: 'Score-CAM (pytorch-grad-cam 1.5.5 ScoreCAM): channels weighted by the softmax of the target scores of the input masked by each upsampled channel.',
  usesGradients: false,
  params: { batchSize: batchSizeParam(16, 'Masked inputs') },
  weighted: async ({ model, input, targets, activations, options }) => {
    const [n, height, width] = input.shape;
    const channels = activations.shape[3];
    const scores = new Float32Array(n * channels);
    const [, h, w] = activations.shape;
    const maps = activations.dataSync() as Float32Array;
    const pixels = input.dataSync() as Float32Array;
    const rows = alignCornersWeights(h, height);
    const cols = alignCornersWeights(w, width);
    const depth = input.shape[3];
    for (let i = 0; i < n; i++) {
      const image = pixels.subarray(i * height * width * depth, (i + 1) * height * width * depth);
      const own = maps.subarray(i * h * w * channels, (i + 1) * h * w * channels);
      for (let start = 0; start < channels; start += options.batchSize) {
        const count = Math.min(options.batchSize, channels - start);
        // Handed over as a host array: the onnx engine reads it without a copy into and out of tfjs's memory (on wasm,
        // about 0.9 s per image of MobileNetV2’s 1,280 masks, measured under load).
        const masked = maskedImages(own, image, { h, w, channels, height, width, depth, start, count, rows, cols });
        const logits = await model.engine.scores({ data: masked, shape: [count, height, width, depth] });
        const chunk = scoresOf(logits, targets[i]);
        logits.dispose();
        scores.set(chunk.dataSync(), i * channels + start);
        chunk.dispose();
      }
    }
    return tf.tidy(() => channelWeighted(activations, tf.softmax(tf.tensor2d(scores, [n, channels]))));
  },
});
