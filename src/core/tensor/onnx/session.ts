/**
 * One ONNX Runtime inference session over a model held in memory. Importing
 * this file loads nothing native: onnxruntime-node (and its shared library)
 * is imported on the first session, so commands that never use the onnx
 * engine never pay for it, and a machine without a build of it can still run
 * the tfjs engine.
 *
 * Every MB ONNX Runtime hands back to JavaScript costs milliseconds (fresh
 * pages), so the graphs salgrid builds output only what their callers read,
 * and the rest stays inside the session.
 */
import type * as Ort from 'onnxruntime-node';
import type { Graph } from './graph.ts';
import { serializeGraph } from './serialize.ts';
import { forWebGpu } from './webgpu-graph.ts';
import { nchwcCheckGraph, nchwcProbeGraph, withNchwcConvs } from './nchwc-graph.ts';

export type OnnxDevice = 'cpu' | 'webgpu' | 'cuda';

export interface SessionOptions {
  readonly device: OnnxDevice;
  /** Intra-op threads (absent: ONNX Runtime's default, one per core). */
  readonly threads?: number;
  /**
   * ONNX Runtime's memory pattern: one block planned for all of a run's
   * intermediate values (default on). Training graphs turn it off: measured
   * on MobileNetV2's training step at batch 8, peak memory 1.67 GiB with it
   * and 0.99 GiB without, and the arena alone reaches its steady speed a
   * step sooner.
   */
  readonly memoryPattern?: boolean;
}

/** A tensor in or out of a session, C order. */
export interface HostTensor<T extends Float32Array | BigInt64Array | Int32Array = Float32Array> {
  readonly data: T;
  readonly shape: readonly number[];
}

export type SessionInput = HostTensor<Float32Array> | HostTensor<BigInt64Array> | HostTensor<Int32Array>;

let runtime: Promise<typeof Ort> | undefined;

/** onnxruntime-node, loaded on first use. */
export function onnxRuntime(): Promise<typeof Ort> {
  return (runtime ??= import('onnxruntime-node'));
}

let nchwcBlock: Promise<number> | undefined;

/** Runs `graph` once on the CPU provider (1 thread) and returns every output. */
async function runOnCpu(graph: Graph, inputs: Readonly<Record<string, SessionInput>>): Promise<HostTensor[]> {
  const session = await OnnxSession.create(serializeGraph(graph, { valueInfo: false }), { device: 'cpu', threads: 1 });
  try {
    return await session.run(inputs, graph.outputs.map((info) => info.name));
  } finally {
    await session.release();
  }
}

/**
 * The channel block of ONNX Runtime's NCHWc CPU kernels on this machine (8
 * with AVX2, 16 with AVX-512), or 0 where its build has none: the channels
 * a ReorderInput of 4 channels pads to.
 */
export async function nchwcKernelBlock(): Promise<number> {
  try {
    const [blocked] = await runOnCpu(nchwcProbeGraph(), { x: { data: new Float32Array(4), shape: [1, 4, 1, 1] } });
    const block = blocked.shape[1];
    return block >= 4 && (block & (block - 1)) === 0 ? block : 0;
  } catch {
    return 0;
  }
}

/**
 * The NCHWc block withNchwcConvs may use here: nchwcKernelBlock's, where a
 * depthwise check graph rewritten for it (nchwcCheckGraph) computes what the
 * plain one does, else 0. Asked once per process.
 */
export function nchwcBlockSize(): Promise<number> {
  nchwcBlock ??= (async () => {
    const block = await nchwcKernelBlock();
    if (block === 0) return 0;
    try {
      const check = nchwcCheckGraph(block);
      const inputs = Object.fromEntries(check.inputs.map((info, k) => {
        const data = Float32Array.from({ length: info.shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 0.37 + k));
        return [info.name, { data, shape: info.shape }];
      }));
      const [plain, rewritten] = [await runOnCpu(check, inputs), await runOnCpu(withNchwcConvs(check, block), inputs)];
      const agrees = plain.every((expected, i) => {
        const scale = expected.data.reduce((largest, v) => Math.max(largest, Math.abs(v)), 0);
        return expected.data.every((v, j) => Math.abs(rewritten[i].data[j] - v) <= 1e-5 * scale);
      });
      return agrees ? block : 0;
    } catch {
      return 0;
    }
  })();
  return nchwcBlock;
}

function tensorType(data: SessionInput['data']): 'float32' | 'int64' | 'int32' {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'int32';
}

export class OnnxSession {
  private released = false;

  private constructor(private readonly ort: typeof Ort, private readonly session: Ort.InferenceSession, readonly options: SessionOptions) {}

  /**
   * A session for `graph` as the device computes it correctly and fast: on
   * WebGPU with the shapes its convolutions miscompute padded away
   * (forWebGpu); on the CPU with depthwise convolutions on graph-valued
   * kernels moved to the NCHWc kernels where this machine has them
   * (withNchwcConvs).
   */
  static async fromGraph(graph: Graph, options: SessionOptions): Promise<OnnxSession> {
    let prepared = graph;
    if (options.device === 'webgpu') prepared = forWebGpu(graph);
    if (options.device === 'cpu') {
      const block = await nchwcBlockSize();
      if (block > 0) prepared = withNchwcConvs(graph, block);
    }
    return OnnxSession.create(serializeGraph(prepared), options);
  }

  static async create(model: Uint8Array, options: SessionOptions): Promise<OnnxSession> {
    const ort = await onnxRuntime();
    const session = await ort.InferenceSession.create(model, {
      // WebGPU in NHWC, its default: ONNX Runtime 1.23.2's NCHW convolutions miscompute ordinary layers (ResNet101's
      // layers 3 and 4 at 224²); the few shapes its NHWC ones get wrong are padded away (webgpu-graph.ts).
      executionProviders: [options.device === 'webgpu' ? { name: 'webgpu', preferredLayout: 'NHWC' } : options.device],
      ...(options.threads !== undefined ? { intraOpNumThreads: options.threads } : {}),
      // One graph runs at a time; parallelism is inside the kernels.
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      ...(options.memoryPattern === false ? { enableMemPattern: false } : {}),
      // The intra-op threads wait for work asleep instead of spinning. On a machine whose cores other processes want
      // too, a spinning thread takes their time and a descheduled one stalls every op that waits for it: MobileNetV2's
      // training step at batch 8 on 2 threads beside one busy process took 0.33–0.36 s so against 0.54–0.60 s
      // spinning, and 0.30–0.32 s against 0.28–0.31 s on an idle machine.
      extra: { session: { intra_op: { allow_spinning: '0' } } },
      // Warnings (e.g. nodes placed on the CPU beside a GPU provider) are ONNX
      // Runtime's business; salgrid says itself what runs where.
      logSeverityLevel: 3,
    });
    return new OnnxSession(ort, session, options);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.session.outputNames;
  }

  /** Runs the graph on `inputs` (by input name) and returns the named outputs, in that order. */
  async run(inputs: Readonly<Record<string, SessionInput>>, outputs: readonly string[]): Promise<HostTensor[]> {
    if (this.released) throw new Error('ONNX session used after release');
    const feeds: Record<string, Ort.Tensor> = {};
    for (const [name, tensor] of Object.entries(inputs)) feeds[name] = new this.ort.Tensor(tensorType(tensor.data), tensor.data, [...tensor.shape]);
    // onnxruntime-node 1.23 labels a partial fetch wrongly (the values of the outputs asked for come back under the
    // graph's first output names), so every output is fetched; salgrid's graphs output only what their callers read.
    const results = await this.session.run(feeds);
    return outputs.map((name) => {
      const result = results[name];
      if (result.type !== 'float32') throw new Error(`ONNX output ${name} is ${result.type}, not float32`);
      return { data: result.data as Float32Array, shape: [...result.dims] };
    });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
