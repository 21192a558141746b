/**
 * DepthwiseConv2dNativeBackpropFilter for wasm, which has none.
 *
 * dW[kh,kw,c,m] = Σ_{n,h,w} x[n, h·s+kh·d−pad, w·s+kw·d−pad, c] · dy[n,h,w,c·M+m].
 * Treating every (c, n) pair as a channel of a one-image batch, and dy as a
 * depthwise filter dilated by the forward stride, one depthwise conv2d
 * (wasm's XNNPACK kernel) gives dW per (c, n); a sum over n finishes it.
 * The per-tap "strided slice × dy, summed" formulation is 10–30× slower on
 * wasm, whose strided slice is slow (3.2 s against 0.23 s at
 * x [8,112,112,96], 3×3 stride 2).
 */
import * as tf from '@tensorflow/tfjs';
import { type KernelArgs, kernelInput, assertFloat32, assertShape, padOrCrop } from './compose.ts';

const KERNEL = 'DepthwiseConv2dNativeBackpropFilter';

export function depthwiseConv2dBackpropFilter({ inputs, backend, attrs }: KernelArgs): tf.Tensor {
  const { strides, dilations, pad, dimRoundingMode, filterShape } = attrs as unknown as tf.DepthwiseConv2dNativeBackpropFilterAttrs;
  return tf.tidy(() => {
    const x = kernelInput(KERNEL, inputs, 'x', backend) as tf.Tensor4D;
    const dy = kernelInput(KERNEL, inputs, 'dy', backend) as tf.Tensor4D;
    assertFloat32(KERNEL, x, dy);
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, dilations, pad, dimRoundingMode, true);
    const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow, outChannels } = info;
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, padInfo } = info;
    const m = outChannels / c;
    assertShape('DepthwiseConv2dNativeBackpropFilter dy', dy.shape, [n, oh, ow, outChannels]);
    if ((sh > 1 || sw > 1) && (dh > 1 || dw > 1)) {
      throw new Error('DepthwiseConv2dNativeBackpropFilter on wasm: strides and dilations cannot both exceed 1');
    }

    const rows = (oh - 1) * sh + info.effectiveFilterHeight;
    const cols = (ow - 1) * sw + info.effectiveFilterWidth;
    const xp = padOrCrop(x, padInfo.top, rows - h - padInfo.top, padInfo.left, cols - w - padInfo.left);
    const input = tf.reshape(tf.transpose(xp, [1, 2, 3, 0]), [1, rows, cols, c * n]) as tf.Tensor4D;
    const filter = tf.reshape(tf.transpose(tf.reshape(dy, [n, oh, ow, c, m]), [1, 2, 3, 0, 4]), [oh, ow, c * n, m]) as tf.Tensor4D;
    // The forward dilation becomes the output stride, the forward stride the filter dilation.
    const perImage = tf.depthwiseConv2d(input, filter, [dh, dw], 'valid', 'NHWC', [sh, sw]); // [1, kh, kw, c·n·m]
    return tf.sum(tf.reshape(perImage, [kh, kw, c, n, m]), 3);
  });
}
