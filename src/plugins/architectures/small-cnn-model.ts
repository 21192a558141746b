/**
 * A small CNN for tests, the quickstart and laptops: `blocks` 3×3 convolution
 * blocks (convolution, batch norm, ReLU), the first `blocks − 1` followed by
 * 2×2 max pooling, then global average pooling and one dense layer. Widths
 * double from `width` per block. At 64×64 with the defaults it has about
 * 100 k parameters and trains in seconds per epoch on wasm.
 *
 * Layers are named like torch modules (`features.3.conv` → `features_3_conv`)
 * so target layers read like the torchvision architectures': the CAM target
 * is the last block, `features.<blocks − 1>`, whose output still has a spatial
 * extent (input / 2^(blocks − 1)).
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../core/errors.ts';
import { tfjsName } from '../../core/tensor/torch-weights.ts';
import { pytorchBatchNorm } from '../../core/tensor/pytorch-batch-norm.ts';

export interface SmallCnnOptions {
  numClasses: number;
  /** [height, width] of the input. */
  inputSize: [number, number];
  /** Filters of the first block; each further block doubles them. */
  width?: number;
  blocks?: number;
  /** Dropout before the dense head (0 = none). */
  dropout?: number;
  /** Batch norm after each convolution (else the convolution has a bias). */
  batchNorm?: boolean;
}

export const SMALL_CNN_HEAD = 'fc';

export function smallCnnTargetLayer(blocks = 4): string {
  return `features.${blocks - 1}`;
}

export function buildSmallCnn(options: SmallCnnOptions): tf.LayersModel {
  const { numClasses, inputSize, width = 16, blocks = 4, dropout = 0, batchNorm = true } = options;
  const shrink = 2 ** (blocks - 1);
  if (!Number.isInteger(blocks) || blocks < 1) throw new UserError(`small-cnn blocks must be a whole number of at least 1, not ${blocks}.`);
  if (inputSize.some((n) => n < shrink)) {
    throw new UserError(`small-cnn with ${blocks} blocks halves the image ${blocks - 1} times, so it needs images of at least ${shrink}×${shrink} pixels, not ${inputSize.join('×')}.`);
  }
  const input = tf.input({ shape: [inputSize[0], inputSize[1], 3], name: 'input' });
  let x = input as tf.SymbolicTensor;
  for (let i = 0; i < blocks; i++) {
    const name = (part: string) => tfjsName(`features.${i}.${part}`);
    x = tf.layers.conv2d({ filters: width * 2 ** i, kernelSize: 3, padding: 'same', useBias: !batchNorm, name: name('conv'), kernelInitializer: 'heNormal' }).apply(x) as tf.SymbolicTensor;
    // PyTorch's batch-norm defaults (eps 1e-5, running = 0.9·running + 0.1·batch), as every salgrid architecture uses.
    if (batchNorm) x = pytorchBatchNorm({ axis: -1, epsilon: 1e-5, momentum: 0.9, name: name('bn') }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.reLU({ name: name('relu') }).apply(x) as tf.SymbolicTensor;
    if (i < blocks - 1) x = tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: tfjsName(`pool${i}`) }).apply(x) as tf.SymbolicTensor;
  }
  x = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(x) as tf.SymbolicTensor;
  if (dropout > 0) x = tf.layers.dropout({ rate: dropout, name: 'dropout' }).apply(x) as tf.SymbolicTensor;
  const logits = tf.layers.dense({ units: numClasses, name: SMALL_CNN_HEAD }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: logits, name: 'small_cnn' });
}

/** The convolution layers (for FullGrad), in order. */
export function smallCnnConvLayers(model: tf.LayersModel): string[] {
  return model.layers.filter((layer) => layer.getClassName() === 'Conv2D').map((layer) => layer.name);
}
