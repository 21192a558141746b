/** `googlenet`: torchvision's GoogLeNet (Inception v1) without the auxiliary heads. */
import { IMAGENET_NORMALISATION } from '../../core/tensor/preprocess.ts';
import { TORCHVISION_IMAGENET_URL, defineTfjsArchitecture, squareSide } from '../../core/tensor/tfjs-architecture.ts';
import { GOOGLENET_HEAD, GOOGLENET_TARGET_LAYER, buildGoogLeNet, googLeNetConvLayers, googLeNetFromStateDict, layerForModule } from './googlenet-model.ts';

interface GoogLeNetParams {
  transformInput: boolean;
  [key: string]: boolean;
}

export const googLeNet = defineTfjsArchitecture<GoogLeNetParams>({
  id: 'googlenet',
  version: '3',
  description: 'GoogLeNet (Inception v1) as torchvision builds it, without aux heads; loads torchvision state dicts (aux weights ignored).',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      transformInput: {
        enum: ['auto', true, false],
        default: 'auto',
        description: "torchvision's transform_input (re-maps ImageNet-normalised input as its ImageNet weights expect); auto: true when starting from pretrained weights, else false.",
      },
    },
  },
  resolve: (params, pretrained) => ({ transformInput: params.transformInput === 'auto' || params.transformInput === undefined ? pretrained !== 'none' : params.transformInput === true }),
  build: (p, numClasses, inputSize) => buildGoogLeNet({ transformInput: p.transformInput, numClasses, inputSize: squareSide(inputSize, 'googlenet') }),
  fromStateDict: (state, p, inputSize) => googLeNetFromStateDict(state, { transformInput: p.transformInput, inputSize: squareSide(inputSize, 'googlenet') }),
  head: GOOGLENET_HEAD,
  normalisation: IMAGENET_NORMALISATION,
  target: () => GOOGLENET_TARGET_LAYER,
  layerForModule,
  convLayers: googLeNetConvLayers,
  // Every ReLU is BasicConv2d's F.relu: torchvision's GoogLeNet has no nn.ReLU module for Captum to hook.
  functionalLayers: (model) => model.layers.filter((layer) => layer.getClassName() === 'ReLU').map((layer) => layer.name),
  imagenet: () => ({ name: 'googlenet-imagenet', url: `${TORCHVISION_IMAGENET_URL}googlenet-1378be20.pth` }),
});
