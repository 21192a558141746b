/**
 * `salgrid explain`: saliency maps of a model for the user's own inputs,
 * outside a sweep, with any registered explainer. The model and the inputs
 * are given as for `salgrid predict` (shared in model-inputs.ts); `--param`
 * takes the explainer's params (YAML values, checked against its schema,
 * defaults filled in), `--layer` and `--target` are shorthands for two of
 * them. The maps go into one float32 `.npy` [n, h, w], or into a folder as
 * one `.npy` and one JET overlay PNG per input.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UserError } from '../core/errors.ts';
import { shownPath } from '../core/shown-path.ts';
import type { JsonSchema, LoadedModel, Params } from '../core/plugins/types.ts';
import type { RawImage } from '../core/io/image-io.ts';
import type { ModelEngine } from '../core/tensor/engine.ts';
import type { TensorExplainer } from '../core/tensor/tensor-explainer.ts';
import { addArchParamOptions, checkParams, cliRegistry, parseParamPairs, parseParamValue } from './arch-params.ts';
import { BACKEND_HELP, parseBackend, parseThreadsHere } from './context.ts';
import { checkInputShape, explainableModel, forEachInputBatch, inputCount, inputLabel, loadModel, locateModel, parseBatchSize, readInputs, type Inputs, type ModelOptions } from './model-inputs.ts';
import { print } from './output.ts';

interface ExplainOptions extends ModelOptions {
  input: string[];
  method: string;
  layer?: string;
  target?: string;
  param?: string[];
  out: string;
  batchSize?: string;
  backend?: string;
  threads?: string;
}

const DEFAULT_BATCH = 8;

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Where the maps go: one array, or a folder with a .npy and a PNG per input. */
type Output = { kind: 'array'; file: string } | { kind: 'folder'; dir: string };

/** `--out`: a .npy path is one array; an existing folder, a path ending in a separator, or any other path is a folder. */
function parseOut(text: string): Output {
  const full = path.resolve(text);
  const isDir = existsSync(full) && statSync(full).isDirectory();
  if (!isDir && !/[\\/]$/.test(text) && full.toLowerCase().endsWith('.npy')) return { kind: 'array', file: full };
  if (existsSync(full) && !isDir) throw new UserError(`--out ${text} is a file, not a folder; give a .npy path for one array [n, h, w], or a folder for one .npy and one overlay PNG per input.`);
  return { kind: 'folder', dir: full };
}

/** The explainer `id`, which must run outside a sweep (a tensor explainer). */
function explainerOf(registry: Awaited<ReturnType<typeof cliRegistry>>, id: string): TensorExplainer {
  if (!registry.has('explainer', id)) throw new UserError(`--method: ${registry.unknownMessage('explainer', id)}.`);
  const plugin = registry.get('explainer', id);
  if (typeof (plugin as Partial<TensorExplainer>).explainInput !== 'function') {
    throw new UserError(`--method ${id} runs only inside a sweep (its plugin has no explainInput); use it in a manifest, or pick another explainer.`);
  }
  return plugin as TensorExplainer;
}

/** `--target`: predicted, label, a class index (digits) or a class name. */
function parseTarget(text: string): Params[string] {
  const trimmed = text.trim();
  if (trimmed === '') throw new UserError('--target takes predicted, a class index or a class name; got an empty value.');
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed;
}

/** `--layer`: a layer name, auto, or a YAML list of names ([relu2, relu3]) whose maps are averaged. */
function parseLayer(text: string): Params[string] {
  const trimmed = text.trim();
  return trimmed.startsWith('[') ? parseParamValue(trimmed, '--layer') : trimmed;
}

/** The explainer's params from --param, --layer and --target, checked against its schema with defaults filled in. */
function explainerParams(explainer: TensorExplainer, options: ExplainOptions): Params {
  const params = parseParamPairs(options.param ?? [], '--param', 'steps=25 or baseline=blurred');
  const properties = ((explainer.params as { properties?: Record<string, JsonSchema> }).properties ?? {}) as Record<string, JsonSchema>;
  const shorthand = (flag: '--layer' | '--target', key: 'layer' | 'target', value: Params[string]) => {
    if (Object.hasOwn(params, key)) throw new UserError(`${flag} and --param ${key}=… both set the ${key}; give it once.`);
    if (!Object.hasOwn(properties, key)) {
      throw new UserError(`${flag} does not apply to ${explainer.id}, which has no ${key} param (its params: ${Object.keys(properties).join(', ') || 'none'}).`);
    }
    params[key] = value;
  };
  if (options.layer !== undefined) shorthand('--layer', 'layer', parseLayer(options.layer));
  if (options.target !== undefined) shorthand('--target', 'target', parseTarget(options.target));
  return checkParams(explainer, params, (name) => {
    if (name === 'layer' && options.layer !== undefined) return '--layer';
    if (name === 'target' && options.target !== undefined) return '--target';
    return '--param';
  });
}

/** Checks the named target layers before any map is computed; the model's error lists the layer names near a wrong one. */
function checkLayers(model: LoadedModel, layer: Params[string] | undefined): void {
  const names = Array.isArray(layer) ? layer : [layer];
  for (const name of names) if (typeof name === 'string' && name !== 'auto') model.camLayers(name);
}

/** File stems for the inputs' maps: image names without their extension (made unique), or image-000… for a .npy. */
export function outputNames(inputs: Inputs): string[] {
  if (inputs.kind === 'npy') {
    const digits = Math.max(3, String(inputs.array.shape[0] - 1).length);
    return Array.from({ length: inputs.array.shape[0] }, (_, i) => `image-${String(i).padStart(digits, '0')}`);
  }
  const taken = new Set<string>();
  return inputs.files.map((file) => {
    const base = path.basename(file);
    const stem = base.replace(/\.[^.]*$/, '') || base;
    let name = taken.has(stem) ? base : stem;
    for (let k = 2; taken.has(name); k++) name = `${stem}-${k}`;
    taken.add(name);
    return name;
  });
}

/** Input `i` of a .npy as an 8-bit gray picture (channel mean, min-max scaled), for the overlay. */
function grayInput(inputs: Extract<Inputs, { kind: 'npy' }>, i: number): RawImage {
  const [, height, width] = inputs.array.shape;
  const pixels = height * width;
  const data = inputs.array.data;
  const gray = new Float32Array(pixels);
  let low = Infinity;
  let high = -Infinity;
  for (let p = 0, at = i * pixels * 3; p < pixels; p++, at += 3) {
    const v = (Number(data[at]) + Number(data[at + 1]) + Number(data[at + 2])) / 3;
    gray[p] = v;
    if (v < low) low = v;
    if (v > high) high = v;
  }
  const span = high - low;
  const out = new Uint8Array(pixels);
  if (span > 0) for (let p = 0; p < pixels; p++) out[p] = Math.round(((gray[p] - low) / span) * 255);
  return { width, height, channels: 1, bitDepth: 8, data: out };
}

async function explain(options: ExplainOptions): Promise<void> {
  const batchSize = parseBatchSize(options.batchSize, DEFAULT_BATCH);
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  const output = parseOut(options.out);
  const registry = await cliRegistry(options.plugin ?? []);
  const explainer = explainerOf(registry, options.method);
  const params = explainerParams(explainer, options);
  const inputs = await readInputs(options.input, 'explain');
  const source = await locateModel(options, inputs, 'explain');

  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(backendRequest, { threads: parseThreadsHere(options.threads) });
  print(tensors.describeBackend(backend));
  const model = await loadModel(source);
  let engine: ModelEngine | undefined;
  try {
    checkInputShape(model, inputs, 'explain');
    const loaded = await explainableModel(model);
    engine = loaded.engine;
    if (Object.hasOwn(params, 'layer')) checkLayers(loaded, params.layer);
    const count = inputCount(inputs);
    const names = outputNames(inputs);
    const { writeNpy } = await import('../core/io/npy.ts');
    const { writeJetOverlay } = await import('../core/tensor/previews.ts');
    const { readImage } = await import('../core/io/image-io.ts');
    const warned = new Set<string>();
    const warn = (message: string) => {
      if (warned.has(message)) return;
      warned.add(message);
      process.stderr.write(`salgrid: warning: ${message}\n`);
    };
    let size: [number, number] | undefined;
    const maps: Float32Array[] = [];
    await forEachInputBatch(model, inputs, batchSize, async (input, indices) => {
      const [, h, w] = input.shape;
      size = [h, w];
      const result = await explainer.explainInput(loaded, input, params, { warn });
      for (const [k, index] of indices.entries()) {
        const map = result.maps[k];
        const target = result.targets[k];
        const className = loaded.classes[target];
        const described = className !== undefined && className !== String(target) ? `class ${target} (${className})` : `class ${target}`;
        if (output.kind === 'folder') {
          const stem = path.join(output.dir, names[index]);
          const picture = inputs.kind === 'npy' ? grayInput(inputs, index) : await readImage(inputs.files[index]);
          await writeJetOverlay(`${stem}.png`, map, w, h, picture);
          await writeNpy(`${stem}.npy`, { dtype: 'float32', shape: [h, w], data: map });
          print(`${inputLabel(inputs, index)}: target ${described} → ${shownPath(stem)}.npy, .png`);
        } else {
          maps.push(map);
          print(`${inputLabel(inputs, index)}: target ${described}`);
        }
      }
    });
    const [h, w] = size!;
    const what = `${explainer.id}${typeof params.layer === 'string' ? ` at ${params.layer === 'auto' ? `${loaded.target.module || 'the default layer'}` : params.layer}` : ''}`;
    if (output.kind === 'array') {
      const data = new Float32Array(count * h * w);
      maps.forEach((map, i) => data.set(map, i * h * w));
      await writeNpy(output.file, { dtype: 'float32', shape: [count, h, w], data });
      print(`wrote ${shownPath(output.file)}: ${what} maps [${count}, ${h}, ${w}] (float32, in the order above)`);
    } else {
      print(`wrote ${count} maps (${what}, float32 [${h}, ${w}] .npy and JET overlay .png each) to ${shownPath(output.dir)}`);
    }
  } finally {
    engine?.dispose();
    model.model?.dispose();
  }
}

export function registerExplain(program: Command): void {
  addArchParamOptions(
    program
      .command('explain')
      .description("saliency maps of a model for your own inputs, outside a sweep, with any registered explainer: a preprocessed .npy [n, h, w, 3] fed as it is, or image files preprocessed as the model's card says")
      .requiredOption('--model <model>', 'a model folder or its model.json, a name from `salgrid weights list`, a PyTorch .pth/.pt with --arch, or an .onnx file (any CNN from torch.onnx.export; --arch-param sets the onnx architecture’s normalize, layout, camLayer)')
      .requiredOption('--input <paths...>', 'a .npy [n, h, w, 3] (NHWC float32, fed as it is), or image files and folders (every image in them, sorted by name)')
      .requiredOption('--method <id>', 'the explainer, e.g. gradcam, scorecam, integrated-gradients (see salgrid info)')
      .requiredOption('--out <file.npy | folder>', 'a .npy path for one float32 array [inputs, h, w]; a folder (existing, ending in /, or any path not ending in .npy) for one .npy and one JET overlay .png per input')
      .option('--layer <name>', 'target layer of a CAM explainer: auto (the default), a torch module path for a model with a card (features.18, layer4), a tfjs layer name for a bare model, or a list [a, b]')
      .option('--target <class>', 'class to explain: predicted (the default: the argmax logit), a class index or a class name')
      .option('--param <key=value>', "an explainer param, value in YAML (e.g. steps=25, eigenSmooth=true); repeatable", collect)
      .option('--arch <id>', 'the architecture of a .pth model (or of a bare tfjs model, for its preprocessing)')
      .option('--classes <names>', 'class names of a .pth or .onnx model, comma-separated in output order')
      .option('--input-size <n>', 'input side in pixels for a .pth model (or an .onnx one exported with a dynamic size) and image inputs (default 224; a .npy sets it)')
      .option('--batch-size <n>', `inputs per explainer call (default ${DEFAULT_BATCH}; explainers may split them further)`)
      .option('--backend <name>', BACKEND_HELP)
      .option('--threads <n>', 'intra-op threads of the onnx engine (default: every core)'),
  ).action(async (options: ExplainOptions) => explain(options));
}
