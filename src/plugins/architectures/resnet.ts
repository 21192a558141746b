/**
 * `resnet` (bare: the study's ResNet101) and the presets `resnet18` … `resnet152`:
 * torchvision's ResNet, with its constructor knobs for custom sizes.
 */
import { UserError } from '../../core/errors.ts';
import type { Params } from '../../core/plugins/types.ts';
import { IMAGENET_NORMALISATION } from '../../core/tensor/preprocess.ts';
import { TORCHVISION_IMAGENET_URL, defineTfjsArchitecture, squareSide, type TfjsArchitecture } from '../../core/tensor/tfjs-architecture.ts';
import { RESNET_HEAD, RESNET_PRESETS, RESNET_TARGET_LAYER, buildResNet, layerForModule, resNetConvLayers, resNetFromStateDict, type ResNetBlock, type ResNetDepth } from './resnet-model.ts';

interface ResolvedResNet {
  /** The preset the params amount to, or null for a custom size. */
  depth: ResNetDepth | null;
  block: ResNetBlock;
  layers: number[];
  widthPerGroup: number;
  groups: number;
  [key: string]: number | number[] | string | null;
}

const DEPTHS = [18, 34, 50, 101, 152] as const;
const IMAGENET_FILES: Record<ResNetDepth, string> = {
  18: 'resnet18-f37072fd.pth',
  34: 'resnet34-b627a593.pth',
  50: 'resnet50-0676ba61.pth',
  101: 'resnet101-63fe2227.pth',
  152: 'resnet152-394f9c45.pth',
};

function resolve(params: Params, fallbackDepth: ResNetDepth): ResolvedResNet {
  const depth = (params.depth ?? fallbackDepth) as ResNetDepth;
  const preset = RESNET_PRESETS[depth];
  if (!preset) throw new UserError(`ResNet depth ${depth} has no preset; use 18, 34, 50, 101 or 152, or give layers (and block).`);
  const layers = Array.isArray(params.layers) ? (params.layers as number[]) : [...preset.layers];
  const block = (params.block as ResNetBlock | undefined) ?? preset.block;
  const widthPerGroup = Number(params.widthPerGroup ?? 64);
  const groups = Number(params.groups ?? 1);
  const isPreset = block === preset.block && layers.join() === preset.layers.join();
  return { depth: isPreset ? depth : null, block, layers, widthPerGroup, groups };
}

function resNetFamily(id: string, depth: ResNetDepth): TfjsArchitecture<ResolvedResNet> {
  return defineTfjsArchitecture<ResolvedResNet>({
    id,
    version: '3',
    description: id === 'resnet'
      ? 'ResNet as torchvision builds it (depth 18–152, or layers/block/widthPerGroup/groups); default depth 101, the study’s.'
      : `ResNet-${depth} as torchvision builds it (a preset of resnet).`,
    params: {
      type: 'object',
      additionalProperties: false,
      properties: {
        depth: { enum: [...DEPTHS], default: depth, description: 'torchvision preset: 18, 34 (basic blocks), 50, 101, 152 (bottlenecks).' },
        layers: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 4, maxItems: 4, description: 'Blocks per stage, overriding the preset’s (e.g. [1, 1, 1, 1]).' },
        block: { enum: ['basic', 'bottleneck'], description: 'Block type (default: the preset’s).' },
        widthPerGroup: { type: 'integer', minimum: 1, default: 64, description: 'Bottleneck width per group (128: wide_resnet).' },
        groups: { type: 'integer', minimum: 1, default: 1, description: 'Grouped 3×3 convolutions in bottlenecks (32: resnext).' },
      },
    },
    resolve: (params) => resolve(params, depth),
    build: (p, numClasses, inputSize) => buildResNet({ block: p.block, layers: p.layers, widthPerGroup: p.widthPerGroup, groups: p.groups, numClasses, inputSize: squareSide(inputSize, id) }),
    fromStateDict: (state, p, inputSize) => resNetFromStateDict(state, { block: p.block, layers: p.layers, widthPerGroup: p.widthPerGroup, groups: p.groups, inputSize: squareSide(inputSize, id) }),
    head: RESNET_HEAD,
    normalisation: IMAGENET_NORMALISATION,
    target: () => RESNET_TARGET_LAYER,
    layerForModule,
    convLayers: resNetConvLayers,
    imagenet: (p) => (p.depth !== null && p.widthPerGroup === 64 && p.groups === 1 ? { name: `resnet${p.depth}-imagenet`, url: `${TORCHVISION_IMAGENET_URL}${IMAGENET_FILES[p.depth]}` } : undefined),
  });
}

export const resNets = [resNetFamily('resnet', 101), ...DEPTHS.map((depth) => resNetFamily(`resnet${depth}`, depth))];
