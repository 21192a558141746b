/**
 * `image-folder`: real images laid out `<images>/<class>/<file>`, with an
 * optional folder of skin-layer maps named like their images.
 */
import path from 'node:path';
import { UserError } from '../../core/errors.ts';
import type { DatasetPlugin } from '../../core/plugins/types.ts';
import {
  SUPPORTED_LIST,
  checkClassesHaveImages,
  indexImages,
  listClassFolders,
  listLayerMaps,
  requireFolder,
  warnIgnored,
  type OnBadImage,
} from '../../core/io/image-folder.ts';
import { LAYER_MAPS_PARAM, ON_BAD_IMAGE_PARAM } from './folder-params.ts';

export interface ImageFolderParams {
  images: string;
  layerMaps?: string | null;
  onBadImage?: OnBadImage;
}

function folders(params: ImageFolderParams, manifestDir: string) {
  const images = path.resolve(manifestDir, params.images);
  requireFolder(images, 'image folder', 'images');
  const layerMaps = params.layerMaps ? path.resolve(manifestDir, params.layerMaps) : undefined;
  if (layerMaps) requireFolder(layerMaps, 'layer-map folder', 'layerMaps');
  return { images, layerMaps };
}

export const imageFolder: DatasetPlugin<ImageFolderParams> = {
  kind: 'dataset',
  id: 'image-folder',
  version: '1',
  description: 'Images in one folder per class (<images>/<class>/<file>), with optional layer maps named like the images.',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['images'],
    properties: {
      images: { type: 'string', minLength: 1, description: `Folder of <class>/<file> images (${SUPPORTED_LIST}), relative to the manifest; class names are the folder names.` },
      layerMaps: LAYER_MAPS_PARAM,
      onBadImage: ON_BAD_IMAGE_PARAM,
    },
  },

  async inputFiles(params, manifestDir) {
    const { images, layerMaps } = folders(params, manifestDir);
    const files = listClassFolders(images).images.map((image) => image.file);
    if (layerMaps) files.push(...listLayerMaps(layerMaps));
    return files.sort();
  },

  async index(ctx) {
    const { images: root, layerMaps } = folders(ctx.params, ctx.manifestDir);
    const listing = listClassFolders(root);
    if (listing.classes.length === 0) throw new UserError(`image folder ${root} holds no class folders; lay the images out as <class>/<file>.`);
    if (listing.empty.length > 0) {
      throw new UserError(`class folder ${path.join(root, listing.empty[0])} holds no images (${SUPPORTED_LIST}); add images to it or remove it.`);
    }
    warnIgnored(listing.ignored, root, ctx.warn);
    const { items } = await indexImages({
      classes: listing.classes,
      images: listing.images,
      layerMaps: layerMaps ? { root: layerMaps, files: listLayerMaps(layerMaps) } : undefined,
      onBadImage: ctx.params.onBadImage ?? 'error',
      knownHashes: new Map(ctx.files.map((f) => [f.path, f.sha256])),
      warn: ctx.warn,
      progress: ctx.progress,
    });
    checkClassesHaveImages(listing.classes, items, (cls) => path.join(root, cls));
    return { classes: listing.classes, items };
  },
};
