/** Param schemas shared by the folder-based dataset plugins, so both describe them alike. */
import type { JsonSchema } from '../../core/plugins/types.ts';

export const LAYER_MAPS_PARAM: JsonSchema = {
  type: ['string', 'null'],
  default: null,
  description: 'Folder of skin-layer maps named like their images (<layerMaps>/<file> or <layerMaps>/<class>/<file>; the extension may differ), relative to the manifest; null for none. Images without a map are indexed, and layer-map metrics skip them.',
};

export const ON_BAD_IMAGE_PARAM: JsonSchema = {
  type: 'string',
  enum: ['error', 'skip'],
  default: 'error',
  description: 'An unreadable image: error stops the index with its name; skip leaves it out with a warning.',
};
