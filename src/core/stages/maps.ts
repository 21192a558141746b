/**
 * Where an explain artifact keeps its outputs, one set of files per image, so
 * the score stage, the report and users find them by image id:
 *
 *   maps/<id>.npy          float32 [H, W], the saliency map
 *   attributions/<id>.npy  float32 [H, W, C], the raw attribution (attribution methods)
 *   previews/<id>.png      the map in JET colours over the image
 *
 * Image ids are relative paths (`CG/img001.png`); they keep their folders.
 */
import path from 'node:path';

function safeId(id: string): string {
  const parts = id.split(/[\\/]+/).filter((part) => part !== '' && part !== '.');
  if (parts.length === 0 || parts.some((part) => part === '..')) throw new Error(`image id ${JSON.stringify(id)} cannot name a file`);
  return parts.map((part) => part.replace(/[^A-Za-z0-9._ -]/g, '_')).join('/');
}

export const MAP_FOLDERS = { maps: 'maps', attributions: 'attributions', previews: 'previews' } as const;

/** Relative path (inside an explain artifact) of an image's map. */
export function mapFile(id: string): string {
  return `${MAP_FOLDERS.maps}/${safeId(id)}.npy`;
}

export function attributionFile(id: string): string {
  return `${MAP_FOLDERS.attributions}/${safeId(id)}.npy`;
}

export function previewFile(id: string): string {
  return `${MAP_FOLDERS.previews}/${safeId(id)}.png`;
}

/** Absolute path of an image's map in an explain artifact folder. */
export function mapPath(explainDir: string, id: string): string {
  return path.join(explainDir, ...mapFile(id).split('/'));
}
