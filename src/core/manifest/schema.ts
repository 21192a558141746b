import { STAGES } from '../plan/stages.ts';
import { BACKEND_REQUESTS } from '../tensor/backend-names.ts';
import type { Registry } from '../plugins/registry.ts';
import type { JsonSchema, PluginKind } from '../plugins/types.ts';

export const SCHEMA_DIALECT = 'https://json-schema.org/draft/2020-12/schema';

/** The manifest sections that list plugins, and the kind each one takes. */
export const PLUGIN_LISTS = { models: 'architecture', explainers: 'explainer', metrics: 'metric' } as const satisfies Record<string, PluginKind>;

const integer = (minimum: number, fallback: number, description: string) => ({ type: 'integer', minimum, default: fallback, description });

/** `trained:` on a model entry: fold models made elsewhere, imported instead of trained. */
export const TRAINED_SCHEMA = {
  type: 'string',
  minLength: 1,
  description:
    'Fold models trained outside salgrid, imported instead of trained: a path relative to the manifest with {fold} (the 1-based fold number) and optionally {model} (this entry’s label), e.g. models/{model}/fold{fold}.pth. A built-in architecture takes a PyTorch state dict (.pth, .pt) or a tfjs model.json (or its folder), onnx an .onnx file. Each fold’s file keys its task by content; training: does not apply.',
};

function pluginEntry(kind: PluginKind, idSchema: JsonSchema): JsonSchema {
  const trained = kind === 'architecture';
  return {
    type: ['string', 'object'],
    description: `${/^[aeiou]/.test(kind) ? 'An' : 'A'} ${kind} plugin: its id, or { id, params, name${trained ? ', trained' : ''} }.`,
    if: { type: 'string' },
    then: idSchema,
    else: {
      required: ['id'],
      additionalProperties: false,
      properties: {
        id: { ...idSchema, description: `The ${kind} plugin's id.` },
        name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$', description: 'Label of this entry in tables and charts (default: the id plus the params that tell its variants apart).' },
        params: { type: 'object', default: {}, description: `Params of the ${kind}; a list where the param takes no list, or { grid: [...] }, makes a grid axis.` },
        ...(trained ? { trained: TRAINED_SCHEMA } : {}),
      },
    },
  };
}

export const OPTIMIZER_SCHEMA = {
  type: 'object',
  description: 'One optimizer: { sgd: {...} } or { adam: {...} }.',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
  default: { sgd: { learningRate: 0.001, momentum: 0.9 } },
  properties: {
    sgd: {
      type: 'object',
      additionalProperties: false,
      properties: {
        learningRate: { type: 'number', exclusiveMinimum: 0, default: 0.001 },
        momentum: { type: 'number', minimum: 0, default: 0.9 },
        nesterov: { type: 'boolean', default: false },
        weightDecay: { type: 'number', minimum: 0, default: 0 },
      },
    },
    adam: {
      type: 'object',
      additionalProperties: false,
      properties: {
        learningRate: { type: 'number', exclusiveMinimum: 0, default: 0.001 },
        beta1: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.9 },
        beta2: { type: 'number', minimum: 0, exclusiveMaximum: 1, default: 0.999 },
        epsilon: { type: 'number', exclusiveMinimum: 0, default: 1e-8, description: 'PyTorch’s default (tfjs’s is 1e-7).' },
        weightDecay: { type: 'number', minimum: 0, default: 0 },
      },
    },
  },
};

const metricId = (fallback: string) => ({ type: 'string', minLength: 1, default: fallback, description: 'Metric plugin id (found under any name the manifest gives it; of several variants, the first).' });
const measure = (fallback: string, what: string) => ({ type: 'string', minLength: 1, default: fallback, description: `Column of the metric's rows: ${what}.` });
const fraction = (fallback: number, description: string) => ({ type: 'number', minimum: 0, maximum: 1, default: fallback, description });

/**
 * The study's decision scheme (report section "Verdicts"). The thresholds
 * are choices, not the study's: it gives none.
 */
const DECISION = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description:
    "The study's decision scheme: accuracy (high or low) × attention (on the diagnostic layers or elsewhere, from Hit Rate and layer coverage) gives each model one of four verdicts, qualified by the reliability of its maps (DiC, IiC). Thresholds are choices; the report shows the numbers behind every verdict.",
  properties: {
    accuracy: fraction(0.9, 'High accuracy: the mean test accuracy over folds is at least this.'),
    hitRate: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Attention on the diagnostic layers needs the mean Hit Rate (mean over folds) at least `min`.',
      properties: { metric: metricId('hit-rate'), measure: measure('graded', 'the Hit Rate'), min: { type: 'number', default: 2, description: 'Least mean Hit Rate of correct focus (graded scale: +3 top layer … −1 outside the layers).' } },
    },
    coverage: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Attention on the diagnostic layers needs the mean map over the top layer at least `minRatio` times the mean map over the background.',
      properties: {
        metric: metricId('layer-coverage'),
        top: measure('top', 'mean map over the top (diagnostic) layer'),
        background: measure('background', 'mean map outside the layers'),
        minRatio: { type: 'number', minimum: 0, default: 1.5, description: 'Least top / background ratio of correct focus.' },
      },
    },
    reliability: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: "A map is reliable when its Drop in Confidence (DiC) is at most `maxDrop` and its Increase in Confidence (IiC) at least `minIncrease`; with unreliable maps the attention finding cannot be trusted and must be compared with other methods.",
      properties: {
        metric: metricId('confidence-change'),
        params: { type: 'object', default: { perturbation: 'darken', cover: 'unimportant' }, description: 'Params the metric variant must have (the first matching variant is used).' },
        drop: measure('drop', 'DiC, averaged over images'),
        maxDrop: { type: 'number', default: 0.5, description: 'Largest DiC of a reliable map.' },
        increase: measure('increase', 'IiC, the share of images whose confidence rose'),
        minIncrease: { type: 'number', default: 0.1, description: 'Least IiC of a reliable map.' },
      },
    },
  },
};

/** `execution.slurm`: how tasks become Slurm jobs when `executor: slurm`. */
const SLURM = {
  type: 'object',
  additionalProperties: false,
  default: {},
  description:
    'Slurm jobs (with executor: slurm or `salgrid run --executor slurm`): salgrid keeps the DAG and submits each task, once its inputs exist, as a job running `salgrid task run <key>`; runs/ must be on a filesystem the submitting machine and the compute nodes share. Unset options are left to the cluster’s defaults.',
  properties: {
    partition: { type: 'string', minLength: 1, description: 'Partition of every job (--partition).' },
    account: { type: 'string', minLength: 1, description: 'Account charged for the jobs (--account).' },
    qos: { type: 'string', minLength: 1, description: 'Quality of service (--qos).' },
    time: {
      type: 'string',
      pattern: '^(\\d+-\\d{1,2}(:\\d{2}){0,2}|\\d+(:\\d{2}){0,2})$',
      description: 'Time limit of each job (--time): minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS. A job that runs out is retried and resumes from its checkpoint.',
    },
    mem: { type: 'string', pattern: '^\\d+[KMGT]?$', description: 'Memory per job (--mem), e.g. 16G.' },
    cpusPerTask: { type: 'integer', minimum: 1, description: 'CPUs per job (--cpus-per-task).' },
    gpusPerTask: { type: 'integer', minimum: 0, default: 0, description: 'GPUs per tensor job (train, predict, explain, perturbation metrics) as --gres=gpu:N; cpu jobs never ask for one. 0 suits a CPU-only cluster.' },
    extraArgs: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'More sbatch options for every job, passed last, e.g. [--constraint=a100, --exclude=node7].' },
    maxJobs: { type: 'integer', minimum: 1, default: 100, description: 'Most jobs of this run queued or running at once.' },
    pollSeconds: { type: 'number', exclusiveMinimum: 0, default: 10, description: 'Seconds between looks at the jobs (one squeue call for all of them).' },
    localStages: {
      type: 'array',
      items: { enum: [...STAGES] },
      uniqueItems: true,
      default: ['index', 'split', 'aggregate', 'report'],
      description: 'Stages run on the submitting machine instead (short, and a job each would mostly wait in the queue).',
    },
  },
};

/**
 * The manifest's JSON Schema. With `plugins`, ids are restricted to the
 * registered ones and each entry's params checked against its plugin's
 * schema (grid axes allowed): the composed schema editors and `salgrid
 * schema` use. Without, params are free objects, checked per plugin later.
 */
export function manifestSchema(registry?: Registry): JsonSchema {
  // With no plugin of a kind registered (an empty enum is no schema), any id passes here and resolving names the problem.
  const ids = (kind: PluginKind): JsonSchema => (registry && registry.ids(kind).length > 0 ? { type: 'string', enum: registry.ids(kind) } : { type: 'string', minLength: 1 });
  const entries = (kind: PluginKind, description: string, minItems: number): JsonSchema => ({
    type: 'array',
    description,
    minItems,
    ...(minItems === 0 ? { default: [] } : {}),
    items: registry ? withPluginParams(pluginEntry(kind, ids(kind)), registry, kind) : pluginEntry(kind, ids(kind)),
  });
  const cellValue = { type: 'string', description: 'A plugin id or variant label.' };
  const dataset: JsonSchema = {
    type: 'object',
    description: 'Where the images come from. Grid axes in `params` make dataset variants (e.g. with and without an artefact), each swept with every model, explainer, metric and fold.',
    required: ['source'],
    additionalProperties: false,
    properties: {
      source: { ...ids('dataset'), description: 'A dataset plugin.' },
      params: {
        type: 'object',
        default: {},
        description: 'Params of the dataset plugin (paths are relative to the manifest); a list where the param takes no list, or { grid: [...] }, makes a grid axis: one dataset variant per value.',
      },
      names: {
        type: 'array',
        items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._+-]*$' },
        minItems: 1,
        uniqueItems: true,
        description: 'Labels of the dataset variants in tables, charts and verdicts, one per variant in grid order (default: the params that tell them apart).',
      },
      imageSize: { type: 'array', items: { type: 'integer', minimum: 8 }, minItems: 2, maxItems: 2, default: [224, 224], description: 'Model input size [height, width].' },
    },
  };
  if (registry) Object.assign(dataset, withPluginParams({}, registry, 'dataset', 'source'));
  return {
    $schema: SCHEMA_DIALECT,
    title: 'salgrid manifest',
    description: 'A sweep: architectures × saliency methods × metrics × cross-validation folds.',
    type: 'object',
    required: ['name', 'dataset'],
    additionalProperties: false,
    properties: {
      $schema: { type: 'string', description: 'Schema for editors (YAML language server modeline).' },
      name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', description: 'Names the sweep folder runs/<name>/.' },
      description: { type: 'string' },
      plugins: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'Third-party plugin modules: paths (relative to the manifest) or package names.' },
      dataset,
      folds: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Cross-validation folds.',
        properties: {
          k: integer(2, 5, 'Number of folds.'),
          seed: integer(0, 1, 'Seed of the fold assignment.'),
          stratify: { type: 'boolean', default: true, description: 'Keep each class’s share equal across folds.' },
          validation: { type: 'number', minimum: 0, maximum: 0.9, default: 0.15, description: 'Share of each training part held out for validation.' },
          only: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, description: 'Run only these folds (1-based).' },
        },
      },
      training: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'How every model is trained.',
        properties: {
          epochs: integer(1, 10, 'Training epochs.'),
          batchSize: integer(1, 8, 'Images per training step.'),
          seed: integer(0, 1, 'Seed of weight init, shuffling and augmentation.'),
          optimizer: OPTIMIZER_SCHEMA,
          schedule: {
            type: 'object',
            additionalProperties: false,
            description: 'Learning-rate schedule.',
            properties: {
              stepLR: {
                type: 'object',
                additionalProperties: false,
                properties: { stepSize: integer(1, 7, 'Epochs between decays.'), gamma: { type: 'number', exclusiveMinimum: 0, default: 0.1 } },
              },
            },
          },
          augment: {
            type: 'object',
            additionalProperties: false,
            description: 'Training-time augmentation (never applied at explain time).',
            properties: {
              rotate: { type: 'number', minimum: 0, maximum: 180, default: 0, description: 'Random rotation ± degrees.' },
              flip: { enum: ['none', 'horizontal', 'vertical', 'both'], default: 'none' },
            },
          },
          pretrained: { type: 'string', default: 'none', description: '`imagenet`, `none`, or a path to a .pth or tfjs model.json.' },
          freezeEpochs: { type: 'integer', minimum: 0, default: 0, description: 'Epochs that train the new head alone first.' },
          classWeights: { type: 'boolean', default: false, description: 'Weight the loss by inverse class frequency.' },
        },
      },
      models: entries('architecture', 'CNN architectures to train on every fold, or to import fold by fold where an entry says trained: (none: a data-only sweep that indexes, splits and reports the folds).', 0),
      explainers: entries('explainer', 'Saliency methods applied to every trained model.', 0),
      metrics: entries('metric', 'Measures applied to every saliency map.', 0),
      exclude: {
        type: 'array',
        default: [],
        description: 'Grid cells to leave out, e.g. { model: mobilenet-v2, explainer: scorecam }; dataset: names a dataset variant by its label.',
        items: {
          type: 'object',
          additionalProperties: false,
          minProperties: 1,
          properties: { dataset: { type: 'string', description: 'A dataset variant label.' }, model: cellValue, explainer: cellValue, metric: cellValue, fold: { type: 'integer', minimum: 1 } },
        },
      },
      execution: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'Where and how tasks run.',
        properties: {
          backend: {
            enum: [...BACKEND_REQUESTS],
            default: 'auto',
            description:
              'What runs the networks: onnx (ONNX Runtime) on onnx:cuda, onnx:webgpu or onnx:cpu (onnx: the first of these that works), or a TensorFlow.js backend (tensorflow, webgpu, wasm, cpu); auto takes the first that works of onnx:cuda, onnx:webgpu (a hardware GPU), onnx:cpu, tensorflow, webgpu, wasm, cpu.',
          },
          threads: {
            anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 1 }],
            default: 'auto',
            description: 'Intra-op threads of each tensor worker’s onnx engine; workers × threads never exceeds the cores (auto: the cores divided among the tensor workers).',
          },
          allowSoftwareAdapter: { type: 'boolean', default: false, description: 'Let webgpu and onnx:webgpu run on a software Vulkan driver (lavapipe): for tests, far too slow for work.' },
          gpus: { anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 0 }], default: 'auto', description: 'GPUs to use (auto: all that nvidia-smi lists).' },
          workers: {
            type: 'object',
            additionalProperties: false,
            default: {},
            properties: {
              gpu: {
                anyOf: [{ const: 'auto' }, { type: 'integer', minimum: 1 }],
                default: 'auto',
                description: 'Concurrent tensor tasks (train, predict, explain, perturbation metrics), each in its own worker process; auto: one per GPU, or on a backend that computes on the CPU one per core (fewer when execution.threads gives each more than one).',
              },
              cpu: integer(1, 2, 'Concurrent cpu tasks (index, split, map-only metrics, aggregate, report).'),
            },
          },
          retries: integer(0, 1, 'Retries of a task whose worker crashed or failed unexpectedly.'),
          executor: { enum: ['local', 'slurm'], default: 'local', description: 'Where tasks run: local (this machine), or slurm (each task a Slurm job over a shared runs/; see `slurm`).' },
          slurm: SLURM,
        },
      },
      report: {
        type: 'object',
        additionalProperties: false,
        default: {},
        description: 'The HTML report.',
        properties: {
          charts: { type: 'array', items: ids('chart'), uniqueItems: true, default: [], description: 'Chart plugins, in order (default: every registered chart that has data to draw).' },
          gallery: integer(0, 3, 'Test images per class shown in the gallery (each with its layer map and every explainer’s map over it, per model).'),
          decision: DECISION,
        },
      },
    },
  };
}

/** Adds, for every plugin of a kind, a rule checking `params` against that plugin's schema. */
function withPluginParams(entry: JsonSchema, registry: Registry, kind: PluginKind, idField = 'id'): JsonSchema {
  const rules = registry.all(kind).map((plugin) => ({
    if: { type: 'object', required: [idField], properties: { [idField]: { const: plugin.id } } },
    then: { properties: { params: axisified(plugin.params) } },
  }));
  return rules.length === 0 ? entry : { ...entry, allOf: rules };
}

/** A params schema in which every property also accepts a list of values or { grid: [...] } (grid axes). */
export function axisified(params: JsonSchema): JsonSchema {
  const properties = (params.properties ?? {}) as Record<string, JsonSchema>;
  const wrapped: Record<string, JsonSchema> = {};
  for (const [name, property] of Object.entries(properties)) {
    wrapped[name] = {
      ...(property.description ? { description: property.description } : {}),
      anyOf: [
        property,
        { type: 'array', items: property, minItems: 1, description: 'Grid axis: one variant per value.' },
        { type: 'object', required: ['grid'], additionalProperties: false, properties: { grid: { type: 'array', items: property, minItems: 1 } } },
      ],
    };
  }
  return { ...params, properties: wrapped };
}
