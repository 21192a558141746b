/**
 * `kfold-folders`: a dataset that comes split already, as the study's data
 * was organised: `<root>/k1..kN/{train,val,test}/<class>/<file>`. An image
 * that sits in several folds is one item; the folds are handed to the split
 * stage as they are.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../../core/errors.ts';
import type { DatasetPlugin, PredefinedFold } from '../../core/plugins/types.ts';
import {
  SUPPORTED_LIST,
  checkClassesHaveImages,
  indexImages,
  listClassFolders,
  listLayerMaps,
  requireFolder,
  sha256Of,
  warnIgnored,
  type ClassImage,
  type ClassFolderListing,
  type OnBadImage,
} from '../../core/io/image-folder.ts';
import { LAYER_MAPS_PARAM, ON_BAD_IMAGE_PARAM } from './folder-params.ts';

export interface KfoldFoldersParams {
  root: string;
  layerMaps?: string | null;
  onBadImage?: OnBadImage;
}

const PARTS = ['train', 'val', 'test'] as const;
type Part = (typeof PARTS)[number];
const FOLD_FOLDER = /^k(\d+)$/;

interface FoldFolder {
  name: string;
  dir: string;
  parts: Partial<Record<Part, ClassFolderListing>>;
}

function folders(params: KfoldFoldersParams, manifestDir: string) {
  const root = path.resolve(manifestDir, params.root);
  requireFolder(root, 'fold folder', 'root');
  const layerMaps = params.layerMaps ? path.resolve(manifestDir, params.layerMaps) : undefined;
  if (layerMaps) requireFolder(layerMaps, 'layer-map folder', 'layerMaps');
  return { root, layerMaps };
}

/** The `k<n>` folders in fold order, each with the part folders that exist. */
function listFolds(root: string): FoldFolder[] {
  return readdirSync(root)
    .filter((name) => FOLD_FOLDER.test(name) && statSync(path.join(root, name)).isDirectory())
    .sort((a, b) => Number(FOLD_FOLDER.exec(a)![1]) - Number(FOLD_FOLDER.exec(b)![1]))
    .map((name) => {
      const dir = path.join(root, name);
      const parts: FoldFolder['parts'] = {};
      for (const part of PARTS) {
        const partDir = path.join(dir, part);
        if (existsSync(partDir) && statSync(partDir).isDirectory()) parts[part] = listClassFolders(partDir);
      }
      return { name, dir, parts };
    });
}

function checkLayout(root: string, folds: FoldFolder[]): void {
  if (folds.length === 0) throw new UserError(`fold folder ${root} holds no fold folders; lay the data out as k1..kN/{train,val,test}/<class>/<file>.`);
  folds.forEach((fold, i) => {
    if (fold.name !== `k${i + 1}`) throw new UserError(`fold folder ${root} has ${folds.map((f) => f.name).join(', ')}, but folds must be numbered k1..k${folds.length} without gaps; rename them.`);
    for (const part of ['train', 'test'] as const) {
      if (!fold.parts[part]) throw new UserError(`fold ${fold.name} has no ${part} folder ${path.join(fold.dir, part)}; every fold needs train and test (val is optional).`);
    }
    for (const part of PARTS) {
      const listing = fold.parts[part];
      if (listing?.empty.length) throw new UserError(`class folder ${path.join(fold.dir, part, listing.empty[0])} holds no images (${SUPPORTED_LIST}); add images to it or remove it.`);
    }
  });
}

interface Union {
  classes: string[];
  images: ClassImage[];
  folds: PredefinedFold[];
}

/** One item per `<class>/<file>` across all folds; the same name must mean the same bytes, and one part per fold. */
function unite(folds: FoldFolder[], hashes: Map<string, string>): Union {
  const first = new Map<string, ClassImage>();
  const classes = new Set<string>();
  const predefined = folds.map((fold) => {
    const partOf = new Map<string, { part: Part; file: string }>();
    const ids = { train: [] as string[], val: [] as string[], test: [] as string[] };
    for (const part of PARTS) {
      const listing = fold.parts[part];
      if (!listing) continue;
      listing.classes.forEach((cls) => classes.add(cls));
      for (const image of listing.images) {
        const earlier = partOf.get(image.id);
        if (earlier) throw new UserError(`image ${image.id} is in both ${earlier.part} and ${part} of fold ${fold.name} (${earlier.file}, ${image.file}); an image belongs to one part of a fold.`);
        partOf.set(image.id, { part, file: image.file });
        ids[part].push(image.id);
        const seen = first.get(image.id);
        if (!seen) first.set(image.id, image);
        else if (sha256Of(seen.file, hashes) !== sha256Of(image.file, hashes)) {
          throw new UserError(`${seen.file} and ${image.file} share the name ${image.id} but differ in content; an image must be the same file in every fold, so rename one of them.`);
        }
      }
    }
    return ids;
  });
  const sortedClasses = [...classes].sort();
  const images = [...first.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { classes: sortedClasses, images, folds: predefined };
}

export const kfoldFolders: DatasetPlugin<KfoldFoldersParams> = {
  kind: 'dataset',
  id: 'kfold-folders',
  version: '1',
  description: 'Pre-split folds k1..kN/{train,val,test}/<class>/<file>, used as given; optional layer maps named like the images.',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['root'],
    properties: {
      root: { type: 'string', minLength: 1, description: `Folder holding k1..kN/{train,val,test}/<class>/<file> images (${SUPPORTED_LIST}), relative to the manifest; set folds.k to N.` },
      layerMaps: LAYER_MAPS_PARAM,
      onBadImage: ON_BAD_IMAGE_PARAM,
    },
  },

  async inputFiles(params, manifestDir) {
    const { root, layerMaps } = folders(params, manifestDir);
    const files = listFolds(root).flatMap((fold) => PARTS.flatMap((part) => fold.parts[part]?.images.map((image) => image.file) ?? []));
    if (layerMaps) files.push(...listLayerMaps(layerMaps));
    return files.sort();
  },

  async index(ctx) {
    const { root, layerMaps } = folders(ctx.params, ctx.manifestDir);
    const folds = listFolds(root);
    checkLayout(root, folds);
    for (const fold of folds) for (const part of PARTS) if (fold.parts[part]) warnIgnored(fold.parts[part]!.ignored, path.join(fold.dir, part), ctx.warn);
    const hashes = new Map(ctx.files.map((f) => [f.path, f.sha256]));
    const union = unite(folds, hashes);
    const { items, skipped } = await indexImages({
      classes: union.classes,
      images: union.images,
      layerMaps: layerMaps ? { root: layerMaps, files: listLayerMaps(layerMaps) } : undefined,
      onBadImage: ctx.params.onBadImage ?? 'error',
      knownHashes: hashes,
      warn: ctx.warn,
      progress: ctx.progress,
    });
    checkClassesHaveImages(union.classes, items, (cls) => `${root}/k*/*/${cls}`);
    const left = new Set(skipped);
    const keep = (ids: string[]) => ids.filter((id) => !left.has(id)).sort();
    return {
      classes: union.classes,
      items,
      folds: union.folds.map((fold) => ({ train: keep(fold.train), val: keep(fold.val), test: keep(fold.test) })),
    };
  },
};
