/**
 * The one place built-in plugins are registered. Core never imports a plugin
 * by name: the CLI hands this module to the registry (and to every worker).
 * Adding a method or metric is one file under src/plugins plus one line here.
 */
import type { Plugin } from '../core/plugins/types.ts';
import { imageFolder } from './datasets/image-folder.ts';
import { kfoldFolders } from './datasets/kfold-folders.ts';
import { syntheticHfus } from './datasets/synthetic-hfus.ts';
import { denseNets } from './architectures/densenet.ts';
import { googLeNet } from './architectures/googlenet.ts';
import { mobileNetV2 } from './architectures/mobilenet-v2.ts';
import { resNets } from './architectures/resnet.ts';
import { smallCnn } from './architectures/small-cnn.ts';

const builtins: Plugin[] = [
  imageFolder,
  kfoldFolders,
  syntheticHfus,
  smallCnn,
  mobileNetV2,
  ...resNets,
  ...denseNets,
  googLeNet,
];

export default builtins;
