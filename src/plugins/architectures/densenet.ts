/**
 * `densenet` (bare: the study's DenseNet201) and the presets `densenet121` …
 * `densenet201`: torchvision's DenseNet, with its constructor knobs.
 */
import { UserError } from '../../core/errors.ts';
import type { Params } from '../../core/plugins/types.ts';
import { IMAGENET_NORMALISATION } from '../../core/tensor/preprocess.ts';
import { TORCHVISION_IMAGENET_URL, defineTfjsArchitecture, squareSide, type TfjsArchitecture } from '../../core/tensor/tfjs-architecture.ts';
import { layerForModule } from '../../core/tensor/torch-weights.ts';
import { DENSENET_CAM_ACTIVATION_LAYER, DENSENET_CAM_GRADIENT_LAYER, DENSENET_PRESETS, DENSENET_TARGET_LAYER, buildDenseNet, denseNetFromState, type DenseNetPreset } from './densenet-model.ts';

type Depth = 121 | 161 | 169 | 201;
const DEPTHS = [121, 161, 169, 201] as const;
const IMAGENET_FILES: Record<Depth, string> = {
  121: 'densenet121-a639ec97.pth',
  161: 'densenet161-8d451a50.pth',
  169: 'densenet169-b2777c0a.pth',
  201: 'densenet201-c1103571.pth',
};

interface ResolvedDenseNet {
  /** The preset the params amount to, or null for a custom size. */
  depth: Depth | null;
  growthRate: number;
  blockConfig: number[];
  initFeatures: number;
  bnSize: number;
  [key: string]: number | number[] | null;
}

function resolve(params: Params, fallbackDepth: Depth): ResolvedDenseNet {
  const depth = (params.depth ?? fallbackDepth) as Depth;
  const preset = DENSENET_PRESETS[`densenet${depth}` as DenseNetPreset];
  if (!preset) throw new UserError(`DenseNet depth ${depth} has no preset; use 121, 161, 169 or 201, or give growthRate, blockConfig and initFeatures.`);
  const growthRate = Number(params.growthRate ?? preset.growthRate);
  const blockConfig = Array.isArray(params.blockConfig) ? (params.blockConfig as number[]) : [...preset.blockConfig];
  const initFeatures = Number(params.initFeatures ?? preset.numInitFeatures);
  const bnSize = Number(params.bnSize ?? 4);
  const isPreset = growthRate === preset.growthRate && blockConfig.join() === preset.blockConfig.join() && initFeatures === preset.numInitFeatures && bnSize === 4;
  return { depth: isPreset ? depth : null, growthRate, blockConfig, initFeatures, bnSize };
}

const builderParams = (p: ResolvedDenseNet, inputSize: [number, number], id: string) => ({
  growthRate: p.growthRate,
  blockConfig: p.blockConfig,
  numInitFeatures: p.initFeatures,
  bnSize: p.bnSize,
  inputSize: squareSide(inputSize, id),
});

function denseNetFamily(id: string, depth: Depth): TfjsArchitecture<ResolvedDenseNet> {
  return defineTfjsArchitecture<ResolvedDenseNet>({
    id,
    version: '3',
    description: id === 'densenet'
      ? 'DenseNet as torchvision builds it (depth 121–201, or growthRate/blockConfig/initFeatures/bnSize); default depth 201, the study’s.'
      : `DenseNet-${depth} as torchvision builds it (a preset of densenet).`,
    params: {
      type: 'object',
      additionalProperties: false,
      properties: {
        depth: { enum: [...DEPTHS], default: depth, description: 'torchvision preset: 121, 161, 169 or 201.' },
        growthRate: { type: 'integer', minimum: 1, description: 'Channels each dense layer adds (default: the preset’s).' },
        blockConfig: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, description: 'Dense layers per block (default: the preset’s, e.g. [6, 12, 48, 32]).' },
        initFeatures: { type: 'integer', minimum: 1, description: 'Filters of the stem convolution (torchvision num_init_features; default: the preset’s).' },
        bnSize: { type: 'integer', minimum: 1, default: 4, description: 'Bottleneck width factor (torchvision bn_size).' },
      },
    },
    resolve: (params) => resolve(params, depth),
    build: (p, numClasses, inputSize) => buildDenseNet({ ...builderParams(p, inputSize, id), numClasses }),
    fromStateDict: (state, p, inputSize) => denseNetFromState(state, builderParams(p, inputSize, id)),
    head: 'classifier',
    normalisation: IMAGENET_NORMALISATION,
    target: () => DENSENET_TARGET_LAYER,
    layerForModule: (model, module) => layerForModule(model, module, 'DenseNet', `${DENSENET_TARGET_LAYER}, features.denseblock4 or features.transition3`),
    // torchvision's forward applies an in-place ReLU to norm5: hooks record the activation after it and the gradient before it.
    camLayers: (_model, module) => (module === DENSENET_TARGET_LAYER ? { module, gradient: DENSENET_CAM_GRADIENT_LAYER, activation: DENSENET_CAM_ACTIVATION_LAYER } : undefined),
    convLayers: (model) => model.layers.filter((layer) => layer.getClassName() === 'Conv2D').map((layer) => layer.name),
    // The ReLU after norm5 is F.relu in torchvision's forward; every other one is an nn.ReLU module.
    functionalLayers: () => [DENSENET_CAM_ACTIVATION_LAYER],
    imagenet: (p) => (p.depth !== null ? { name: `densenet${p.depth}-imagenet`, url: `${TORCHVISION_IMAGENET_URL}${IMAGENET_FILES[p.depth]}` } : undefined),
  });
}

export const denseNets = [denseNetFamily('densenet', 201), ...DEPTHS.map((depth) => denseNetFamily(`densenet${depth}`, depth))];
