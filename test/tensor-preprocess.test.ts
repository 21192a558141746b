import assert from 'node:assert/strict';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isUserError } from '../src/core/errors.ts';
import { seededRandom } from '../src/core/random.ts';
import { readNpy } from '../src/core/io/npy.ts';
import {
  IMAGENET_NORMALISATION,
  augmentImages,
  normalise,
  preprocessImages,
  resizeImages,
  resizeLayerMaps,
  toThreeChannels,
  validatePreprocessing,
  type Preprocessing,
} from '../src/core/tensor/preprocess.ts';
import { ROOT } from './helpers.ts';

function randomImages(shape: [number, number, number, number], seed: number, max = 255): tf.Tensor4D {
  return tf.randomUniform(shape, 0, max, 'float32', seed) as tf.Tensor4D;
}

function assertClose(actual: number[], expected: number[], tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((value, i) => assert.ok(Math.abs(value - expected[i]) <= tolerance, `[${i}] ${value} vs ${expected[i]}`));
}

const flat = (t: tf.Tensor) => Array.from(t.dataSync());

describe('preprocessing', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  describe('resize', () => {
    it('resizes images exactly like resizeBilinear with half-pixel centres, single images and batches', () => {
      const images = randomImages([2, 10, 13, 3], 1);
      const expected = tf.image.resizeBilinear(images, [7, 9], false, true);
      assert.deepEqual(resizeImages(images, [7, 9]).arraySync(), expected.arraySync());
      const single = tf.tensor3d(flat(images).slice(0, 10 * 13 * 3), [10, 13, 3]);
      assert.deepEqual(resizeImages(single, [7, 9]).arraySync()[0], expected.arraySync()[0]);
    });

    it('samples at pixel centres: 2× down averages 2×2 blocks, 2× up interpolates between centres', () => {
      const block = tf.tensor4d([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30], [1, 4, 4, 1]);
      assert.deepEqual(flat(resizeImages(block, [2, 2])), [5, 9, 21, 25]);
      const ramp = tf.tensor4d([0, 1], [1, 1, 2, 1]);
      assert.deepEqual(flat(resizeImages(ramp, [1, 4])), [0, 0.25, 0.75, 1]);
    });

    it('resizes layer maps by nearest neighbour: only levels of the input, dtype and rank kept', async () => {
      const slm = await readNpy(path.join(ROOT, 'test', 'fixtures', 'golden', 'layer-metrics', 'slm.npy'));
      const maps = tf.tensor3d(Int32Array.from(slm.data), slm.shape as [number, number, number], 'int32');
      const levels = new Set(flat(maps));
      assert.deepEqual([...levels].sort((a, b) => a - b), [0, 32, 64, 128, 255]);
      for (const size of [[224, 224], [37, 91], [20, 20]] as [number, number][]) {
        const resized = resizeLayerMaps(maps, size);
        assert.deepEqual(resized.shape, [6, ...size]);
        assert.equal(resized.dtype, 'int32');
        const seen = new Set(flat(resized));
        assert.ok([...seen].every((v) => levels.has(v)), `new values at ${size}: ${[...seen]}`);
        assert.ok(seen.size >= 4, 'the bands survive resizing');
      }
      const single = tf.tensor2d([[0, 255], [128, 64]], [2, 2], 'int32');
      const up = resizeLayerMaps(single, [4, 4]);
      assert.deepEqual(up.arraySync(), [[0, 0, 255, 255], [0, 0, 255, 255], [128, 128, 64, 64], [128, 128, 64, 64]]);
    });

    it('picks the nearest pixel by its centre, not its corner', () => {
      // Half-pixel centres pick columns 1 and 3 of four; corner alignment would pick 0 and 2.
      const map = tf.tensor2d([[10, 20, 30, 40]], [1, 4], 'int32');
      assert.deepEqual(resizeLayerMaps(map, [1, 2]).arraySync(), [[20, 40]]);
      const batch = tf.tensor4d([10, 20, 30, 40], [1, 1, 4, 1], 'int32');
      assert.deepEqual(flat(resizeLayerMaps(batch, [1, 2])), [20, 40]);
    });
  });

  describe('channels and normalisation', () => {
    it('repeats gray into three channels and drops alpha', () => {
      const gray = tf.tensor3d([1, 2, 3, 4], [2, 2, 1]);
      const rgb = toThreeChannels(gray);
      assert.deepEqual(rgb.shape, [1, 2, 2, 3]);
      assert.deepEqual(flat(rgb), [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]);
      const grayAlpha = tf.tensor4d([7, 255, 9, 0], [1, 1, 2, 2]);
      assert.deepEqual(flat(toThreeChannels(grayAlpha)), [7, 7, 7, 9, 9, 9]);
      const rgba = tf.tensor4d([1, 2, 3, 255, 4, 5, 6, 0], [1, 1, 2, 4]);
      assert.deepEqual(flat(toThreeChannels(rgba)), [1, 2, 3, 4, 5, 6]);
      const color = randomImages([2, 3, 3, 3], 4);
      assert.deepEqual(toThreeChannels(color).arraySync(), color.arraySync());
    });

    it('maps the full 8-bit and 16-bit ranges to [0, 1]', () => {
      const eightBit = tf.tensor4d([0, 51, 255], [1, 1, 1, 3]);
      assertClose(flat(normalise(eightBit, { kind: 'unit' })), [0, 0.2, 1]);
      const sixteenBit = tf.tensor4d([0, 13107, 65535], [1, 1, 1, 3], 'int32');
      assertClose(flat(normalise(sixteenBit, { kind: 'unit' }, 16)), [0, 0.2, 1]);
    });

    it('subtracts the mean and divides by the std per channel, after [0, 1]', () => {
      const images = tf.tensor4d([255, 255, 255, 0, 127.5, 255], [1, 1, 2, 3]);
      const result = flat(normalise(images, { kind: 'meanStd', mean: [0.5, 0.25, 0], std: [0.5, 0.25, 2] }));
      assertClose(result, [1, 3, 0.5, -1, 1, 0.5]);
      const imagenet = flat(normalise(tf.fill([1, 1, 1, 3], 255) as tf.Tensor4D, IMAGENET_NORMALISATION));
      assertClose(imagenet, [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225]);
    });

    it('chains resize, three channels and normalisation into a network input, leaking no tensors', () => {
      const preprocessing: Preprocessing = { size: [2, 2], normalisation: IMAGENET_NORMALISATION };
      const gray = randomImages([3, 4, 6, 1], 5);
      const before = tf.memory().numTensors;
      const input = preprocessImages(gray, preprocessing);
      assert.equal(tf.memory().numTensors, before + 1);
      assert.deepEqual(input.shape, [3, 2, 2, 3]);
      const expected = normalise(toThreeChannels(tf.image.resizeBilinear(gray, [2, 2], false, true)), IMAGENET_NORMALISATION);
      assertClose(flat(input), flat(expected));
    });

    it('round-trips a preprocessing through JSON and names the source of a bad one', () => {
      const recorded: Preprocessing = { size: [224, 224], normalisation: IMAGENET_NORMALISATION };
      assert.deepEqual(validatePreprocessing(JSON.parse(JSON.stringify(recorded)), 'model/preprocessing.json'), recorded);
      assert.deepEqual(validatePreprocessing({ size: [64, 32], normalisation: { kind: 'unit' } }, 'x'), { size: [64, 32], normalisation: { kind: 'unit' } });
      const bad: [unknown, RegExp][] = [
        [null, /^m\.json holds no preprocessing object/],
        [{ size: [224], normalisation: { kind: 'unit' } }, /^m\.json: preprocessing size must be \[height, width\]/],
        [{ size: [224, 224], normalisation: { kind: 'zscore' } }, /^m\.json: normalisation kind must be "unit" or "meanStd", not "zscore"/],
        [{ size: [224, 224], normalisation: { kind: 'meanStd', mean: [0, 0, 0], std: [1, 0, 1] } }, /three positive standard deviations/],
      ];
      for (const [value, pattern] of bad) {
        assert.throws(() => validatePreprocessing(value, 'm.json'), (error: Error) => isUserError(error) && pattern.test(error.message));
      }
    });
  });

  describe('augmentation', () => {
    const images = randomImages([8, 9, 11, 3], 7, 1);
    const full = { rotate: 15, flip: 'both' } as const;

    it('is deterministic for a seed and differs for another', () => {
      const a = augmentImages(images, full, seededRandom(1));
      const b = augmentImages(images, full, seededRandom(1));
      const c = augmentImages(images, full, 2);
      assert.deepEqual(a.shape, images.shape);
      assert.deepEqual(a.arraySync(), b.arraySync());
      assert.deepEqual(augmentImages(images, full, 1).arraySync(), a.arraySync(), 'a number seed is the same as seededRandom(seed)');
      assert.notDeepEqual(c.arraySync(), a.arraySync());
    });

    it('flips exactly, per image', () => {
      const always = { flipProbability: 1 };
      assert.deepEqual(augmentImages(images, { ...always, flip: 'horizontal' }, 3).arraySync(), tf.reverse(images, 2).arraySync());
      assert.deepEqual(augmentImages(images, { ...always, flip: 'vertical' }, 3).arraySync(), tf.reverse(images, 1).arraySync());
      assert.deepEqual(augmentImages(images, { ...always, flip: 'both' }, 3).arraySync(), tf.reverse(images, [1, 2]).arraySync());
      assert.deepEqual(augmentImages(images, { flip: 'none', flipProbability: 1 }, 3).arraySync(), images.arraySync());

      // With the default chance, each image is either itself or its mirror, and a batch of 8 has both kinds.
      const mixed = augmentImages(images, { flip: 'horizontal' }, 11).arraySync();
      const original = images.arraySync();
      const mirrored = tf.reverse(images, 2).arraySync();
      const kinds = mixed.map((image, i) => {
        if (JSON.stringify(image) === JSON.stringify(original[i])) return 'same';
        assert.deepEqual(image, mirrored[i], `image ${i} is neither itself nor its mirror`);
        return 'mirrored';
      });
      assert.deepEqual(new Set(kinds), new Set(['same', 'mirrored']));
    });

    it('leaves images untouched when rotating by 0 degrees', () => {
      assert.deepEqual(augmentImages(images, { rotate: 0 }, 5).arraySync(), images.arraySync());
      assert.deepEqual(augmentImages(images, { rotate: 0, interpolation: 'bilinear' }, 5).arraySync(), images.arraySync());
    });

    it('rotates about the centre, filling uncovered corners with the fill value', () => {
      const square = randomImages([4, 21, 21, 1], 9, 1);
      const rotated = augmentImages(square, { rotate: 30, fill: -1 }, 8).arraySync();
      const original = square.arraySync();
      rotated.forEach((image, i) => {
        assert.equal(image[10][10][0], original[i][10][10][0], 'the centre pixel stays put');
        assert.notDeepEqual(image, original[i], 'the image turned');
        // Turning a square by a few degrees uncovers its corners.
        assert.equal(image[0][0][0], -1);
        assert.equal(image[20][20][0], -1);
      });
    });

    it('applies to training input only when asked: preprocessImages augments in [0, 1] before normalising', () => {
      const raw = randomImages([4, 12, 12, 1], 12);
      const preprocessing: Preprocessing = { size: [8, 8], normalisation: { kind: 'meanStd', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } };
      const plain = preprocessImages(raw, preprocessing);
      const augmented = preprocessImages(raw, preprocessing, { augment: { augmentation: { rotate: 20, flip: 'both' }, random: 4 } });
      assert.notDeepEqual(augmented.arraySync(), plain.arraySync());
      const unit = tf.div(toThreeChannels(resizeImages(raw, [8, 8])), 255) as tf.Tensor4D;
      const expected = tf.div(tf.sub(augmentImages(unit, { rotate: 20, flip: 'both' }, 4), 0.5), 0.25);
      assertClose(flat(augmented), flat(expected));
      // A rotation's fill is black in [0, 1], which is (0 - 0.5) / 0.25 after normalising.
      assert.ok(flat(augmented).some((v) => v === -2));
    });
  });
});
