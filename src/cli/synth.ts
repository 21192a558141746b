import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { createAjv, problemsFromAjv } from '../core/manifest/ajv.ts';
import type { TaskContext } from '../core/plugins/types.ts';
import { writeFileAtomic } from '../core/store/atomic.ts';
import { syntheticHfus, type SyntheticHfusParams } from '../plugins/datasets/synthetic-hfus.ts';
import { print } from './output.ts';

interface SynthOptions {
  perClass?: string;
  size?: string;
  seed?: string;
  noise?: string;
  shortcutProbability?: string;
  shortcutClasses?: string;
  shortcutSize?: string;
  force?: boolean;
}

/** Which option set which param, for error messages in the user's own words. */
const OPTION_OF: Record<string, string> = {
  '/perClass': '--per-class',
  '/size': '--size',
  '/seed': '--seed',
  '/noise': '--noise',
  '/shortcut/probability': '--shortcut-probability',
  '/shortcut/classes': '--shortcut-classes',
  '/shortcut/size': '--shortcut-size',
};

const GENERATED = ['images', 'layer-maps', 'shortcut-markers.json'];

function number(text: string, option: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UserError(`${option} takes a number, got "${text}".`);
  return value;
}

function parseSize(text: string): number | [number, number] {
  const parts = text.split(/[x×,]/i).map((part) => Number(part));
  // Checked here: the schema's one-or-two-numbers union would give a muddled message.
  if ((parts.length === 1 || parts.length === 2) && parts.every((n) => Number.isInteger(n) && n >= 16 && n <= 4096)) {
    return parts.length === 1 ? parts[0] : [parts[0], parts[1]];
  }
  throw new UserError(`--size takes a whole number of pixels from 16 to 4096, or HEIGHTxWIDTH such as 128x160, got "${text}".`);
}

/** The plugin's params from the options, checked against its schema (which also fills in the defaults). */
export function synthParams(options: SynthOptions): SyntheticHfusParams {
  if ((options.shortcutProbability === undefined) !== (options.shortcutClasses === undefined)) {
    throw new UserError('--shortcut-probability and --shortcut-classes go together; give both, e.g. --shortcut-probability 0.8 --shortcut-classes AD,PS.');
  }
  if (options.shortcutSize !== undefined && options.shortcutProbability === undefined) {
    throw new UserError('--shortcut-size sizes the marker that --shortcut-probability and --shortcut-classes add; give them too.');
  }
  const params: Record<string, unknown> = {};
  if (options.perClass !== undefined) params.perClass = number(options.perClass, '--per-class');
  if (options.size !== undefined) params.size = parseSize(options.size);
  if (options.seed !== undefined) params.seed = number(options.seed, '--seed');
  if (options.noise !== undefined) params.noise = number(options.noise, '--noise');
  if (options.shortcutProbability !== undefined) {
    params.shortcut = {
      probability: number(options.shortcutProbability, '--shortcut-probability'),
      classes: options.shortcutClasses!.split(',').map((c) => c.trim()).filter(Boolean),
      ...(options.shortcutSize === undefined ? {} : { size: number(options.shortcutSize, '--shortcut-size') }),
    };
  }
  const validate = createAjv().compile(syntheticHfus.params);
  if (!validate(params)) {
    const [problem] = problemsFromAjv(validate.errors);
    const option = Object.entries(OPTION_OF).find(([pointer]) => problem.pointer.startsWith(pointer))?.[1] ?? 'an option';
    throw new UserError(`${option} ${problem.message}.`);
  }
  return params as unknown as SyntheticHfusParams;
}

async function clearPrevious(dir: string, force: boolean): Promise<void> {
  const previous = GENERATED.filter((name) => existsSync(path.join(dir, name)));
  if (previous.length === 0) return;
  if (!force) throw new UserError(`${dir} already holds ${previous.join(', ')}; pass --force to replace them or choose an empty folder.`);
  for (const name of previous) await rm(path.join(dir, name), { recursive: true, force: true });
}

function context(dir: string, params: SyntheticHfusParams): TaskContext<SyntheticHfusParams> & { files: [] } {
  const interactive = process.stderr.isTTY && !process.env.CI;
  return {
    params,
    out: dir,
    manifestDir: process.cwd(),
    files: [],
    progress(done, total) {
      if (interactive) process.stderr.write(`\rsynth: ${done}/${total} images${done === total ? '\n' : ''}`);
    },
    warn: (message) => process.stderr.write(`warning: ${message}\n`),
    signal: new AbortController().signal,
    async writeFile(relative, data) {
      const file = path.resolve(dir, relative);
      const inside = path.relative(dir, file);
      if (inside.startsWith('..') || path.isAbsolute(inside)) throw new Error(`synthetic-hfus tried to write ${relative} outside ${dir}`);
      await writeFileAtomic(file, data);
    },
  };
}

export function registerSynth(program: Command): void {
  program
    .command('synth <dir>')
    .description('write a synthetic HFUS dataset (images/<class>/*.png + layer-maps/*.png) into <dir>, ready for the image-folder dataset')
    .option('--per-class <n>', 'images per class (default 50)')
    .option('--size <n>', 'image size: N for N×N, or HEIGHTxWIDTH (default 128)')
    .option('--seed <n>', 'generator seed: the same options give byte-identical files (default 1)')
    .option('--noise <x>', 'speckle strength from 0 (none) to 1 (fully developed) (default 0.8)')
    .option('--shortcut-probability <p>', 'chance that an image of a --shortcut-classes class carries a bright marker (a line of text) in the gel')
    .option('--shortcut-classes <list>', 'comma-separated classes that can carry the marker, e.g. AD,PS')
    .option('--shortcut-size <share>', 'length of the marker as a share of the image width (default 0.8)')
    .option('--force', 'replace images/, layer-maps/ and shortcut-markers.json left in <dir> by an earlier synth')
    .action(async (dirArgument: string, options: SynthOptions) => {
      const params = synthParams(options);
      const dir = path.resolve(dirArgument);
      await clearPrevious(dir, Boolean(options.force));
      const started = performance.now();
      const index = await syntheticHfus.index(context(dir, params));
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const { width, height } = index.items[0];
      const shown = path.relative(process.cwd(), dir) || '.';
      const images = path.join(shown, 'images');
      const maps = path.join(shown, 'layer-maps');
      print(`wrote ${index.items.length} images and ${index.items.length} layer maps (${index.classes.join(', ')}; ${params.perClass} per class; ${width}×${height}) in ${seconds} s`);
      print(`  images:     ${images}/<class>/<file>.png`);
      print(`  layer maps: ${maps}/<file>.png`);
      if (params.shortcut.probability > 0) {
        const { markers } = JSON.parse(readFileSync(path.join(dir, 'shortcut-markers.json'), 'utf8')) as { markers: unknown[] };
        print(`  shortcut:   ${markers.length} image(s) carry the marker, listed in ${path.join(shown, 'shortcut-markers.json')}`);
      }
      print('point a manifest at them (paths relative to the manifest):');
      print(`  dataset: { source: image-folder, params: { images: ${images}, layerMaps: ${maps} } }`);
    });
}
