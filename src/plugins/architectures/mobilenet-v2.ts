/** `mobilenet-v2`: torchvision's MobileNetV2, any width multiplier. */
import { IMAGENET_NORMALISATION } from '../../core/tensor/preprocess.ts';
import { TORCHVISION_IMAGENET_URL, defineTfjsArchitecture, squareSide } from '../../core/tensor/tfjs-architecture.ts';
import { MOBILENET_V2_HEAD, MOBILENET_V2_TARGET_LAYER, buildMobileNetV2, layerForModule, mobileNetV2ConvLayers, mobileNetV2FromStateDict } from './mobilenet-v2-model.ts';

interface MobileNetV2Params {
  widthMult: number;
  [key: string]: number;
}

export const mobileNetV2 = defineTfjsArchitecture<MobileNetV2Params>({
  id: 'mobilenet-v2',
  version: '3',
  description: 'MobileNetV2 as torchvision builds it (widthMult scales every layer); loads torchvision state dicts.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: { widthMult: { type: 'number', exclusiveMinimum: 0, maximum: 4, default: 1, description: 'Width multiplier (torchvision width_mult); ImageNet weights exist for 1.' } },
  },
  resolve: (params) => ({ widthMult: Number(params.widthMult ?? 1) }),
  build: (p, numClasses, inputSize) => buildMobileNetV2({ widthMult: p.widthMult, numClasses, inputSize: squareSide(inputSize, 'mobilenet-v2') }),
  fromStateDict: (state, p, inputSize) => mobileNetV2FromStateDict(state, { widthMult: p.widthMult, inputSize: squareSide(inputSize, 'mobilenet-v2') }),
  head: MOBILENET_V2_HEAD,
  normalisation: IMAGENET_NORMALISATION,
  target: () => MOBILENET_V2_TARGET_LAYER,
  layerForModule,
  convLayers: mobileNetV2ConvLayers,
  imagenet: (p) => (p.widthMult === 1 ? { name: 'mobilenet-v2-imagenet', url: `${TORCHVISION_IMAGENET_URL}mobilenet_v2-b0353104.pth` } : undefined),
});
