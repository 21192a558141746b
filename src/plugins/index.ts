/**
 * The one place built-in plugins are registered. Core never imports a plugin
 * by name: the CLI hands this module to the registry (and to every worker).
 * Adding a method or metric is one file under src/plugins plus one line here.
 */
import type { Plugin } from '../core/plugins/types.ts';
import { imageFolder } from './datasets/image-folder.ts';
import { kfoldFolders } from './datasets/kfold-folders.ts';
import { syntheticHfus } from './datasets/synthetic-hfus.ts';

const builtins: Plugin[] = [
  imageFolder,
  kfoldFolders,
  syntheticHfus,
];

export default builtins;
