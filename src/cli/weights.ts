/**
 * `salgrid weights import | list | path`: the weights store, where PyTorch
 * state dicts become tfjs layers-models with a model card, under names that
 * manifests use (`pretrained: imagenet` → `<store>/<arch>-imagenet`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { MissingInputError, UserError, isUserError } from '../core/errors.ts';
import type { Params } from '../core/plugins/types.ts';
import type { Normalisation } from '../core/tensor/preprocess.ts';
import type { ModelCard, TfjsArchitecture } from '../core/tensor/tfjs-architecture.ts';
import { checkStoreName, storedWeightsDir, weightsStoreDir } from '../core/tensor/weights-store.ts';
import { addArchParamOptions, architectureFromOptions, type ArchOptions } from './arch-params.ts';
import { BACKEND_HELP, parseBackend } from './context.ts';
import { print, printJson, textTable } from './output.ts';

interface ImportOptions extends ArchOptions {
  as?: string;
  classes?: string;
  inputSize?: string;
  backend?: string;
}

/** `--input-size n`: the side of the square network input. */
export function parseInputSize(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const side = Number(text);
  if (!/^\d+$/.test(text.trim()) || side < 32 || side > 4096) throw new UserError(`--input-size takes the side of the square input in pixels, a whole number from 32 to 4096 (e.g. 224); got "${text}".`);
  return [side, side];
}

/** `--classes a,b,c`: the class names, in the head's order. */
export function parseClasses(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const classes = text.split(',').map((name) => name.trim());
  if (classes.some((name) => name === '')) throw new UserError(`--classes takes comma-separated class names in the order of the model's outputs, such as AD,CG,PS,ST; got "${text}".`);
  const repeated = classes.find((name, i) => classes.indexOf(name) !== i);
  if (repeated !== undefined) throw new UserError(`--classes names "${repeated}" twice; every class needs its own name.`);
  return classes;
}

/**
 * The store name `pretrained: imagenet` looks for with these params, or
 * undefined where torchvision has no ImageNet weights for them. Read from the
 * plugin's `imagenet` where it exposes one; otherwise from where its
 * trainingFiles looks for the ImageNet weights.
 */
export function imagenetStoreName(plugin: TfjsArchitecture, params: Params): string | undefined {
  return plugin.imagenet(params)?.name;
}

/** A store name made of a file name: characters the store does not allow become `-`. */
function nameFromFile(file: string): string {
  const stem = path.basename(file).replace(/\.[^.]*$/, '');
  return stem.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '') || 'weights';
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes staging folders that imports killed part-way left beside `dir`. */
async function removeStaleStaging(dir: string): Promise<void> {
  const parent = path.dirname(dir);
  const prefix = `.${path.basename(dir)}.`;
  for (const entry of existsSync(parent) ? await readdir(parent) : []) {
    const match = /^\.(?:.+)\.(\d+)\.[0-9a-f]{8}\.(?:tmp|old)$/.exec(entry);
    if (match && entry.startsWith(prefix) && Number(match[1]) !== process.pid && !alive(Number(match[1]))) {
      await rm(path.join(parent, entry), { recursive: true, force: true });
    }
  }
}

/**
 * Writes a folder whole: `write` fills a hidden staging sibling, which is then
 * renamed into place (a previous folder of that name is moved aside first and
 * removed after), so a kill at any instant never leaves half an entry.
 * Returns whether a previous folder was replaced.
 */
export async function publishFolder(dir: string, write: (staging: string) => Promise<void>): Promise<boolean> {
  const parent = path.dirname(dir);
  await mkdir(parent, { recursive: true });
  await removeStaleStaging(dir);
  const stem = path.join(parent, `.${path.basename(dir)}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const staging = `${stem}.tmp`;
  try {
    await write(staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }
  if (!existsSync(dir)) {
    await rename(staging, dir);
    return false;
  }
  await rename(dir, `${stem}.old`);
  await rename(staging, dir);
  await rm(`${stem}.old`, { recursive: true, force: true });
  return true;
}

/** `key=value` pairs of resolved params, for one line of output. */
export function formatParams(params: Params): string {
  const shown = Object.entries(params).filter(([, value]) => value !== null && value !== undefined);
  return shown.length === 0 ? '—' : shown.map(([key, value]) => `${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`).join(' ');
}

function formatOrigin(origin: Record<string, unknown> | undefined): string {
  if (!origin) return '—';
  if (typeof origin.imported === 'string') return `imported from ${origin.imported}`;
  if (origin.trained && typeof origin.trained === 'object') {
    const trained = origin.trained as { fold?: unknown; pretrained?: unknown };
    return `trained (fold ${String(trained.fold)}, pretrained ${String(trained.pretrained)})`;
  }
  return JSON.stringify(origin);
}

async function importWeights(archId: string, file: string, options: ImportOptions): Promise<void> {
  const source = path.resolve(file);
  const inputSize = parseInputSize(options.inputSize);
  const classes = parseClasses(options.classes);
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  if (options.as !== undefined) checkStoreName(options.as);
  const { plugin, params } = await architectureFromOptions(archId, options, '');
  if (!existsSync(source)) throw new MissingInputError(source, 'PyTorch state dict', 'check the path; download torchvision’s ImageNet weights from https://download.pytorch.org/models/');

  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(backendRequest);
  print(tensors.describeBackend(backend));
  const { saveModelWithCard } = await import('../core/tensor/tfjs-architecture.ts');
  const { countTrainableParams } = await import('../core/tensor/torch-weights.ts');
  const { model, card } = await plugin.importPyTorch(source, params, { inputSize, classes });
  try {
    const imagenet = card.classes.length === 1000 ? imagenetStoreName(plugin, params) : undefined;
    const name = options.as ?? imagenet ?? `${plugin.id}-${nameFromFile(source)}`;
    const dir = storedWeightsDir(name);
    const stored: ModelCard = { ...card, origin: { ...card.origin, sha256: await sha256(source) } };
    const replaced = await publishFolder(dir, (staging) => saveModelWithCard(model, stored, staging));
    const trainable = countTrainableParams(model);
    print(`${replaced ? 'replaced' : 'imported'} ${name}: ${plugin.id} (${formatParams(card.architecture.params)}), ${card.classes.length} classes, ${trainable.toLocaleString('en-US')} trainable parameters, input ${card.preprocessing.size.join('×')}`);
    print(`  in ${dir}`);
    if (name === imagenet) print(`  manifests with model ${plugin.id} and training.pretrained: imagenet now start from it.`);
    else print(`  use it with: salgrid predict --model ${name} …, or training.pretrained: ${dir}`);
  } finally {
    model.dispose();
  }
}

/** The onnx architecture's params that run an exported file as the model ran: its class names and normalisation where they are not the defaults. */
function onnxParamsHint(file: string, classes: readonly string[] | undefined, normalisation: Normalisation | undefined, imagenet: Normalisation): string {
  const params = [`file: ${file}`];
  if (classes && classes.some((name, i) => name !== String(i))) params.push(`classes: ${JSON.stringify(classes)}`);
  if (normalisation?.kind === 'unit') params.push('normalize: unit');
  else if (normalisation && JSON.stringify(normalisation) !== JSON.stringify(imagenet)) params.push(`normalize: { mean: ${JSON.stringify(normalisation.mean)}, std: ${JSON.stringify(normalisation.std)} }`);
  return `{ ${params.join(', ')} }`;
}

interface ExportOptions extends ArchOptions {
  inputSize?: string;
  classes?: string;
  backend?: string;
}

/**
 * `salgrid weights export <model> <file.pth | file.onnx>`: a store entry, a
 * model folder (a trained model from a run's cache too) or a .pth with --arch,
 * written as a torchvision state dict that `load_state_dict(strict=True)`
 * takes, or as an ONNX model in the form torch.onnx.export gives (any tfjs
 * model, a bare one too: the graph carries its own architecture).
 */
async function exportWeights(location: string, file: string, options: ExportOptions): Promise<void> {
  const out = path.resolve(file);
  const onnx = /\.onnx$/i.test(out);
  if (!onnx && !/\.(pth|pt)$/i.test(out)) throw new UserError(`salgrid weights export writes a PyTorch state dict (.pth or .pt) or an ONNX model (.onnx), so the output file must end in .pth, .pt or .onnx; got ${file}.`);
  if (!existsSync(path.dirname(out))) throw new MissingInputError(path.dirname(out), 'Output folder', 'create it first, or write the file elsewhere');
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  const { locateModel, loadModel } = await import('./model-inputs.ts');
  // No inputs: nothing to preprocess, so locateModel refuses no bare model; a state dict needs a card, checked here.
  const source = await locateModel({ ...options, model: location }, { kind: 'images', files: [] }, 'explain');
  if (!onnx && source.kind === 'tfjs' && !source.card) {
    throw new UserError(`${location} is a bare tfjs model (no model card), so which torchvision architecture its weights belong to is unknown; export a model salgrid built or imported (a weights-store name, a trained model's folder), or give its .pth with --arch; or write it as an ONNX model (a file ending in .onnx), which needs no architecture.`);
  }
  const tensors = await import('../core/tensor/backend.ts');
  print(tensors.describeBackend(await tensors.initBackend(backendRequest)));
  const loaded = await loadModel(source);
  try {
    const model = loaded.model;
    if (!model) {
      throw new UserError(`${location} is an ONNX graph, not a salgrid model, so salgrid has no weights of its own to export; ${onnx ? 'use the file as it is' : 'export the tfjs model it came from, or convert it to PyTorch with other tools'}.`);
    }
    const card = loaded.card;
    const what = card ? `${card.architecture.id} (${formatParams(card.architecture.params)})` : 'a tfjs model without a model card';
    if (onnx) {
      const { exportOnnxFile, ONNX_INPUT, ONNX_OUTPUT, ONNX_BATCH } = await import('../core/tensor/onnx/export-file.ts');
      const { writeFileAtomic } = await import('../core/store/atomic.ts');
      const { IMAGENET_NORMALISATION } = await import('../core/tensor/preprocess.ts');
      const written = exportOnnxFile(model);
      await writeFileAtomic(out, written.bytes);
      const [channels, height, width] = written.input;
      print(`exported ${loaded.name}: ${what}, ${written.classes} classes, input ${height}×${width}, ${written.nodes} nodes (${written.constants.toLocaleString('en-US')} constant values)`);
      print(`  to ${out}: an ONNX model (opset ${written.opset}, IR ${written.irVersion}), input "${ONNX_INPUT}" NCHW [${ONNX_BATCH}, ${channels}, ${height}, ${width}] → output "${ONNX_OUTPUT}" [${ONNX_BATCH}, ${written.classes}] for any batch size ${ONNX_BATCH}, nodes named by torch module scope`);
      print(`  in salgrid: model onnx with params ${onnxParamsHint(path.basename(out), loaded.classes, loaded.preprocessing?.normalisation, IMAGENET_NORMALISATION)}`);
      return;
    }
    const { exportTorchWeights } = await import('../core/tensor/torch-weights.ts');
    const { batchesTrackedOf } = await import('../core/tensor/tfjs-architecture.ts');
    const { writeStateDict } = await import('../core/io/pytorch-state-dict-write.ts');
    const entries = exportTorchWeights(model, { numBatchesTracked: batchesTrackedOf(loaded.card) });
    await writeStateDict(out, entries);
    const values = entries.reduce((sum, e) => sum + e.data.length, 0);
    print(`exported ${loaded.name}: ${what}, ${card!.classes.length} classes, ${entries.length} tensors (${values.toLocaleString('en-US')} values)`);
    print(`  to ${out}: a torchvision state dict; in PyTorch, model.load_state_dict(torch.load(path)) on the same architecture and number of classes`);
  } finally {
    loaded.model?.dispose();
  }
}

interface StoreEntry {
  name: string;
  dir: string;
  card?: ModelCard;
  problem?: string;
}

async function storeEntries(): Promise<StoreEntry[]> {
  const store = weightsStoreDir();
  if (!existsSync(store)) return [];
  const { readModelCard } = await import('../core/tensor/tfjs-architecture.ts');
  const entries: StoreEntry[] = [];
  for (const entry of (await readdir(store, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(store, entry.name);
    if (!existsSync(path.join(dir, 'model.json'))) continue;
    try {
      entries.push({ name: entry.name, dir, card: await readModelCard(dir) });
    } catch (error) {
      if (!isUserError(error) && !(error instanceof SyntaxError)) throw error;
      entries.push({ name: entry.name, dir, problem: 'unreadable model card' });
    }
  }
  return entries;
}

export function registerWeights(program: Command): void {
  const weights = program.command('weights').description('the weights store: pretrained models that manifests and predict name (in $SALGRID_WEIGHTS, default ~/.cache/salgrid/weights)');

  addArchParamOptions(
    weights
      .command('import <arch> <file>')
      .description('import a PyTorch state dict (.pth/.pt) of an architecture into the weights store; its head keeps the size it has in the file')
      .option('--as <name>', 'store name (default: <arch>-imagenet for torchvision’s ImageNet weights, else <arch>-<file name>)')
      .option('--classes <names>', 'class names in output order, comma-separated (default: 0, 1, …)')
      .option('--input-size <n>', 'side of the square input in pixels (default 224)')
      .option('--backend <name>', BACKEND_HELP),
  ).action(async (arch: string, file: string, options: ImportOptions) => importWeights(arch, file, options));

  addArchParamOptions(
    weights
      .command('export <model> <file>')
      .description('write a model (a weights-store name, a model folder, a trained model in a run’s cache, or a .pth with --arch) as a PyTorch state dict (.pth) that torchvision’s model loads with load_state_dict(strict=True), or as an ONNX model (.onnx: NCHW input, logits output, dynamic batch) for ONNX Runtime and salgrid’s onnx architecture')
      .option('--arch <id>', 'the architecture of a .pth --model')
      .option('--classes <names>', 'class names of a .pth --model, comma-separated')
      .option('--input-size <n>', 'side of the square input of a .pth --model (default 224)')
      .option('--backend <name>', BACKEND_HELP),
  ).action(async (model: string, file: string, options: ExportOptions) => exportWeights(model, file, options));

  weights
    .command('list')
    .description('list the weights in the store: name, architecture, params, classes, origin')
    .option('--json', 'print as JSON')
    .action(async (options: { json?: boolean }) => {
      const entries = await storeEntries();
      if (options.json) {
        return printJson(entries.map((e) => ({ name: e.name, dir: e.dir, architecture: e.card?.architecture ?? null, classes: e.card?.classes ?? null, inputSize: e.card?.preprocessing.size ?? null, origin: e.card?.origin ?? null })));
      }
      const store = weightsStoreDir();
      if (entries.length === 0) return print(`no weights in ${store} yet; add some with: salgrid weights import <arch> <file.pth>`);
      print(
        textTable(
          ['name', 'architecture', 'params', 'classes', 'origin'],
          entries.map((e) =>
            e.card
              ? [e.name, e.card.architecture.id, formatParams(e.card.architecture.params), e.card.classes.length, formatOrigin(e.card.origin)]
              : [e.name, '—', '—', '—', e.problem ?? `bare tfjs model (no model card)`],
          ),
          false,
        ),
      );
      print(`\nin ${store}`);
    });

  weights
    .command('path')
    .description('print the weights store folder ($SALGRID_WEIGHTS, default ~/.cache/salgrid/weights)')
    .action(() => print(weightsStoreDir()));
}
