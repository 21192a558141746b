/**
 * `fullgrad`: FullGrad — |input × input gradient| plus, for every convolution
 * and batch norm with a bias, |bias × gradient at its output|, each channel
 * min-max scaled and resized, summed. Target layers do not apply.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../../../core/errors.ts';
import type { LoadedModel } from '../../../core/plugins/types.ts';
import { activationName } from '../../../core/tensor/constant-weight-layers.ts';
import { compileLayerGraph } from '../../../core/tensor/layer-graph.ts';
import { SMOOTHING_PARAMS, defineCamExplainer, principalProjection, scaleCam, scaleChannels } from './cam-base.ts';

interface Variable {
  read(): tf.Tensor;
}
interface BiasFields {
  bias?: Variable | null;
  gamma?: Variable | null;
  beta?: Variable | null;
  movingMean?: Variable;
  movingVariance?: Variable;
  epsilon?: number;
  axis?: number;
}

/** Each bias layer's name and its bias per output channel (batch norm's: β − μ·γ/√(σ²+ε), as the FullGrad paper folds it). */
function biasSources(model: LoadedModel, warn: (message: string) => void): Array<{ name: string; bias: tf.Tensor1D }> {
  if (!model.model) {
    throw new UserError(`FullGrad reads the bias of every convolution and batch norm from the network's layers, which salgrid has for the models it builds but not for ${model.name}, an imported graph; use another CAM (gradcam, gradcam++, layercam…) for it.`);
  }
  const convs = new Set(model.convLayers);
  const sources: Array<{ name: string; bias: tf.Tensor1D }> = [];
  for (const step of compileLayerGraph(model.model).steps) {
    const layer = step.layer;
    const fields = layer as unknown as BiasFields;
    if ((convs.has(layer.name) || convs.has(step.path)) && fields.bias) {
      const activation = activationName(layer);
      if (activation && activation !== 'linear') warn(`FullGrad: convolution ${step.path} applies ${activation} itself, so its gradient is taken after that activation, not at the convolution's output as in PyTorch.`);
      sources.push({ name: step.path, bias: tf.clone(fields.bias.read()) as tf.Tensor1D });
    } else if (layer.getClassName() === 'BatchNormalization' && (fields.gamma || fields.beta) && fields.movingMean && fields.movingVariance) {
      const { gamma, beta, movingMean, movingVariance, epsilon = 1e-3 } = fields;
      sources.push({
        name: step.path,
        bias: tf.tidy(() => {
          const scale = tf.div(gamma ? gamma.read() : 1, tf.sqrt(tf.add(movingVariance.read(), epsilon)));
          return tf.sub(beta ? beta.read() : 0, tf.mul(movingMean.read(), scale)) as tf.Tensor1D;
        }),
      });
    }
  }
  return sources;
}

export const fullgrad = defineCamExplainer({
  id: 'fullgrad',
  version: '1',
  description: 'FullGrad (pytorch-grad-cam 1.5.5): input × gradient plus bias × gradient of every convolution and batch norm, scaled per channel and summed.',
  params: {
    ...SMOOTHING_PARAMS,
    eigenSmooth: { type: 'boolean', default: false, description: 'Project the input term and the per-layer terms, at 1/8 of the input size, on their first principal component instead of summing them.' },
  },
  maps: async (model, input, targets, options, warn) => {
    const sources = biasSources(model, warn);
    try {
      const result = await model.engine.gradients(input, targets, { layers: sources.map((source) => source.name), input: true });
      try {
        return tf.tidy(() => {
          const [, height, width] = input.shape;
          const size: [number, number] = [height, width];
          const inputTerm = scaleChannels(tf.abs(tf.mul(input, result.input!)) as tf.Tensor4D, size);
          // Resizing is linear, so each layer's channels are summed before its one resize rather than after one resize each.
          const layerTerms = sources.map(({ bias }, i) => {
            const gradients = result.layers[i].gradients as tf.Tensor4D;
            const scaled = scaleChannels(tf.abs(tf.mul(gradients, bias)) as tf.Tensor4D, [gradients.shape[1], gradients.shape[2]]);
            return resized(tf.sum(scaled, 3, true) as tf.Tensor4D, size);
          });
          let cam: tf.Tensor3D;
          if (options.eigenSmooth) {
            const stack = tf.concat([inputTerm, ...layerTerms], 3) as tf.Tensor4D;
            const small = scaleChannels(stack, [Math.floor(height / 8), Math.floor(width / 8)]);
            cam = tf.squeeze(scaleChannels(tf.expandDims(principalProjection(small, options.signFix), 3) as tf.Tensor4D, size), [3]) as tf.Tensor3D;
          } else {
            cam = tf.addN([tf.sum(inputTerm, 3), ...layerTerms.map((term) => tf.squeeze(term, [3]))]) as tf.Tensor3D;
          }
          return scaleCam(cam);
        });
      } finally {
        tf.dispose([...result.layers.flatMap((layer) => [layer.activations, layer.gradients]), ...(result.input ? [result.input] : [])]);
      }
    } finally {
      tf.dispose(sources.map((source) => source.bias));
    }
  },
});

/** cv2's bilinear resize (half-pixel centres); the same size is a copy. */
function resized(maps: tf.Tensor4D, size: [number, number]): tf.Tensor4D {
  return size[0] === maps.shape[1] && size[1] === maps.shape[2] ? maps : tf.image.resizeBilinear(maps, size, false, true);
}
