/** `small-cnn`: a few convolution blocks, fast enough for tests, the quickstart and laptops. */
import { IMAGENET_NORMALISATION } from '../../core/tensor/preprocess.ts';
import { defineTfjsArchitecture } from '../../core/tensor/tfjs-architecture.ts';
import { layerForModule } from '../../core/tensor/torch-weights.ts';
import { UserError } from '../../core/errors.ts';
import { SMALL_CNN_HEAD, buildSmallCnn, smallCnnConvLayers, smallCnnTargetLayer } from './small-cnn-model.ts';

interface SmallCnnParams {
  width: number;
  blocks: number;
  dropout: number;
  [key: string]: number;
}

export const smallCnn = defineTfjsArchitecture<SmallCnnParams>({
  id: 'small-cnn',
  version: '3',
  description: 'Small CNN (3×3 conv-BN-ReLU blocks, max pooling, global pooling, dense head): fast, for tests, the quickstart and laptops.',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      width: { type: 'integer', minimum: 1, default: 16, description: 'Filters of the first block; each further block doubles them.' },
      blocks: { type: 'integer', minimum: 1, maximum: 8, default: 4, description: 'Convolution blocks; all but the last halve the image.' },
      dropout: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0, description: 'Dropout before the dense head.' },
    },
  },
  resolve: (params) => ({ width: Number(params.width ?? 16), blocks: Number(params.blocks ?? 4), dropout: Number(params.dropout ?? 0) }),
  build: (p, numClasses, inputSize) => buildSmallCnn({ ...p, numClasses, inputSize }),
  fromStateDict: () => {
    throw new UserError('small-cnn has no PyTorch counterpart, so it imports no .pth files; use a tfjs model.json instead.');
  },
  head: SMALL_CNN_HEAD,
  normalisation: IMAGENET_NORMALISATION,
  target: (p) => smallCnnTargetLayer(p.blocks),
  layerForModule: (model, module) => layerForModule(model, module, 'small-cnn', 'features.3 or features.2.relu'),
  convLayers: smallCnnConvLayers,
});
