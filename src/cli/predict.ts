/**
 * `salgrid predict`: class probabilities (or logits) of a model for the
 * user's own inputs, outside a sweep. The model is a tfjs model folder (with
 * or without a model card), a weights-store name, or a PyTorch state dict with
 * `--arch`; the inputs are a preprocessed `.npy` [n, h, w, 3] fed as it is, or
 * image files (folders: every image in them, sorted by name) preprocessed as
 * the model's card says.
 */
import path from 'node:path';
import type { Command } from 'commander';
import type * as TF from '@tensorflow/tfjs';
import { UserError } from '../core/errors.ts';
import type { ModelEngine } from '../core/tensor/engine.ts';
import { shownPath } from '../core/shown-path.ts';
import { addArchParamOptions } from './arch-params.ts';
import { BACKEND_HELP, parseBackend, parseThreadsHere } from './context.ts';
import { DEFAULT_BATCH, checkInputShape, forEachInputBatch, inputCount, inputLabel, loadModel, locateModel, parseBatchSize, readInputs, type Inputs, type Model, type ModelOptions } from './model-inputs.ts';
import { print, textTable } from './output.ts';

interface PredictOptions extends ModelOptions {
  input: string[];
  out: string;
  logits?: boolean;
  batchSize?: string;
  backend?: string;
  threads?: string;
  quiet?: boolean;
}

interface PredictedRow {
  /** What is written: logits or probabilities. */
  values: Float32Array;
  probabilities: Float32Array;
}

/** One row per input, run through the engine batch by batch. */
async function predictRows(engine: ModelEngine, model: Model, inputs: Inputs, batchSize: number, logits: boolean): Promise<PredictedRow[]> {
  const tf = await import('@tensorflow/tfjs');
  const rows: PredictedRow[] = [];
  await forEachInputBatch(model, inputs, batchSize, async (input) => {
    // The model's own output: a final softmax kept.
    const y: TF.Tensor = await engine.scores(input, { beforeSoftmax: false });
    try {
      if (y.rank !== 2) throw new UserError(`${model.name} outputs an array of shape [${y.shape.join(', ')}], not [inputs, classes]; predict needs a classifier.`);
      const [n, classes] = y.shape;
      const values = y.dataSync() as Float32Array;
      const probabilities = model.softmaxOutput ? values : tf.tidy(() => tf.softmax(y as TF.Tensor2D).dataSync() as Float32Array);
      const written = logits ? values : probabilities;
      for (let r = 0; r < n; r++) rows.push({ values: written.slice(r * classes, (r + 1) * classes), probabilities: probabilities.slice(r * classes, (r + 1) * classes) });
    } finally {
      y.dispose();
    }
  });
  return rows;
}

async function predict(options: PredictOptions): Promise<void> {
  const batchSize = parseBatchSize(options.batchSize);
  const backendRequest = parseBackend(options.backend) ?? 'auto';
  const out = path.resolve(options.out);
  if (!out.toLowerCase().endsWith('.npy')) throw new UserError(`--out ${options.out} must be a .npy file path; predict writes one float32 array [inputs, classes].`);
  const inputs = await readInputs(options.input);
  const source = await locateModel(options, inputs);

  const tensors = await import('../core/tensor/backend.ts');
  const backend = await tensors.initBackend(backendRequest, { threads: parseThreadsHere(options.threads) });
  if (!options.quiet) print(tensors.describeBackend(backend));
  const loaded = await loadModel(source);
  let engine: ModelEngine | undefined;
  try {
    checkInputShape(loaded, inputs);
    if (options.logits && loaded.softmaxOutput) throw new UserError(`${loaded.name} ends in a softmax, so its logits are not available; drop --logits to get its probabilities.`);
    const { createEngine } = await import('../core/tensor/engines.ts');
    engine = createEngine(loaded.graph?.model ?? loaded.model!);
    const count = inputCount(inputs);
    const rows = await predictRows(engine, loaded, inputs, batchSize, options.logits === true);

    const classes = rows[0].values.length;
    const names = loaded.classes?.length === classes ? loaded.classes : Array.from({ length: classes }, (_, i) => String(i));
    const result = new Float32Array(count * classes);
    rows.forEach((row, i) => result.set(row.values, i * classes));
    const { writeNpy } = await import('../core/io/npy.ts');
    await writeNpy(out, { dtype: 'float32', shape: [count, classes], data: result });

    if (!options.quiet) {
      const table = rows.map((row, i) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if (row.probabilities[c] > row.probabilities[best]) best = c;
        return [i, inputLabel(inputs, i), names[best], row.probabilities[best].toFixed(4)];
      });
      print(textTable(['row', 'input', 'predicted', 'probability'], table, false));
    }
    print(`wrote ${shownPath(out)}: ${options.logits ? 'logits' : 'probabilities'} [${count}, ${classes}] (float32; rows in the order above, columns ${names.length <= 8 ? names.join(', ') : `${names.slice(0, 4).join(', ')}, … ${names[names.length - 1]}`})`);
  } finally {
    engine?.dispose();
    loaded.model?.dispose();
  }
}

export function registerPredict(program: Command): void {
  addArchParamOptions(
    program
      .command('predict')
      .description("class probabilities (or logits) of a model for your own inputs, outside a sweep: a preprocessed .npy [n, h, w, 3] fed as it is, or image files preprocessed as the model's card says")
      .requiredOption('--model <model>', 'a model folder or its model.json, a name from `salgrid weights list`, a PyTorch .pth/.pt with --arch, or an .onnx file (any CNN from torch.onnx.export; --arch-param sets the onnx architecture’s normalize, layout, camLayer)')
      .requiredOption('--input <paths...>', 'a .npy [n, h, w, 3] (NHWC float32, fed as it is), or image files and folders (every image in them, sorted by name)')
      .requiredOption('--out <file.npy>', 'where to write the float32 array [inputs, classes]')
      .option('--arch <id>', 'the architecture of a .pth model (or of a bare tfjs model, for its preprocessing)')
      .option('--logits', 'write the logits instead of the softmax probabilities')
      .option('--classes <names>', 'class names of a .pth or .onnx model, comma-separated in output order')
      .option('--input-size <n>', 'input side in pixels for a .pth model (or an .onnx one exported with a dynamic size) and image inputs (default 224; a .npy sets it)')
      .option('--batch-size <n>', `inputs per forward pass (default ${DEFAULT_BATCH})`)
      .option('--backend <name>', BACKEND_HELP)
      .option('--threads <n>', 'intra-op threads of the onnx engine (default: every core)')
      .option('--quiet', 'print only where the array went, not the per-input predictions'),
  ).action(async (options: PredictOptions) => predict(options));
}
