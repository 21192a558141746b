/**
 * DepthwiseConv2dNativeBackpropInput for wasm, which has none.
 *
 * The adjoint of a strided depthwise correlation is a stride-1 depthwise
 * correlation of the zero-dilated dy with the spatially flipped filter:
 * dx[i] = Σ_k dyDilated[i + pad − k·d] · w[k]. One fast wasm depthwise
 * conv2d; with a channel multiplier M the M outputs of each input channel
 * are summed.
 */
import * as tf from '@tensorflow/tfjs';
import { type KernelArgs, kernelInput, assertFloat32, assertShape, padOrCrop, zeroDilate } from './compose.ts';

const KERNEL = 'DepthwiseConv2dNativeBackpropInput';

export function depthwiseConv2dBackpropInput({ inputs, backend, attrs }: KernelArgs): tf.Tensor {
  const { strides, dilations, pad, dimRoundingMode, inputShape } = attrs as unknown as tf.DepthwiseConv2dNativeBackpropInputAttrs;
  return tf.tidy(() => {
    const dy = kernelInput(KERNEL, inputs, 'dy', backend) as tf.Tensor4D;
    const filter = kernelInput(KERNEL, inputs, 'filter', backend) as tf.Tensor4D;
    assertFloat32(KERNEL, dy, filter);
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape, strides, dilations, pad, dimRoundingMode, true);
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, outChannels } = info;
    const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, padInfo } = info;
    const [kh, kw] = filter.shape;
    const m = outChannels / c;
    assertShape('DepthwiseConv2dNativeBackpropInput dy', dy.shape, [n, oh, ow, outChannels]);

    // zeroDilate leaves stride−1 trailing zeros; the bottom/right amounts account for them.
    const dilated = zeroDilate(dy, sh, sw);
    const top = info.effectiveFilterHeight - 1 - padInfo.top;
    const left = info.effectiveFilterWidth - 1 - padInfo.left;
    const bottom = h - 1 + padInfo.top - (oh - 1) * sh - (sh - 1);
    const right = w - 1 + padInfo.left - (ow - 1) * sw - (sw - 1);
    const padded = padOrCrop(dilated, top, bottom, left, right);
    const flipped = tf.reshape(tf.reverse(filter, [0, 1]), [kh, kw, outChannels, 1]) as tf.Tensor4D;
    const dx = tf.depthwiseConv2d(padded, flipped, 1, 'valid', 'NHWC', [dh, dw]);
    return m === 1 ? dx : tf.sum(tf.reshape(dx, [n, h, w, c, m]), 4);
  });
}
