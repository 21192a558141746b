/**
 * A layers-model flattened into one list of layer calls in a valid order,
 * nested models expanded in place. Explainers evaluate this list themselves
 * (instead of `model.apply`) so they can choose how each layer runs and where
 * a gradient starts.
 */
import type * as tf from '@tensorflow/tfjs';

export type Kwargs = Record<string, unknown>;

export interface LayerStep {
  readonly layer: tf.layers.Layer;
  /** Layer names from the outermost model down, joined by '/'. */
  readonly path: string;
  readonly callArgs: Kwargs;
  /** Keys of the tensors this call reads and writes. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
}

export interface LayerGraph {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly steps: readonly LayerStep[];
  /** Every layer (input layers and nested models too) by name and by path, with the keys of its outputs, once per call of it. */
  readonly named: ReadonlyMap<string, ReadonlyArray<readonly string[]>>;
}

interface GraphNode {
  outboundLayer: tf.layers.Layer;
  inputTensors: tf.SymbolicTensor[];
  outputTensors: tf.SymbolicTensor[];
  callArgs?: Kwargs;
}

interface GraphContainer {
  name: string;
  inputs: tf.SymbolicTensor[];
  outputs: tf.SymbolicTensor[];
  nodesByDepth: Record<string, GraphNode[]>;
}

// Duck-typed rather than `instanceof LayersModel`: a model loaded through a
// second copy of tfjs-layers is still a graph we can walk.
function isContainer(layer: unknown): layer is GraphContainer {
  const candidate = layer as Partial<GraphContainer>;
  return typeof candidate.nodesByDepth === 'object' && candidate.nodesByDepth !== null && Array.isArray(candidate.inputs) && Array.isArray(candidate.outputs);
}

/** A Sequential creates its graph on first use (predict, fit, apply); we may be that first use. */
function ensureBuilt(container: GraphContainer): void {
  const sequential = container as unknown as { built?: boolean; build?: () => void; getClassName?: () => string };
  if (sequential.built === false && sequential.getClassName?.() === 'Sequential') sequential.build?.();
}

export function compileLayerGraph(model: tf.LayersModel): LayerGraph {
  const steps: LayerStep[] = [];
  const named = new Map<string, string[][]>();
  const name = (label: string, keys: string[]): void => {
    const calls = named.get(label) ?? [];
    calls.push(keys);
    named.set(label, calls);
  };
  let scopes = 0;

  // A nested model's tensors get their own key scope, so a model called twice
  // yields two independent sets of keys.
  const expand = (container: GraphContainer, prefix: string, inputKeys: readonly string[]): string[] => {
    ensureBuilt(container);
    const scope = scopes++;
    const keys = new Map<number, string>();
    container.inputs.forEach((tensor, i) => keys.set(tensor.id, inputKeys[i]));
    const depths = Object.keys(container.nodesByDepth).map(Number).sort((a, b) => b - a);
    for (const depth of depths) {
      for (const node of container.nodesByDepth[String(depth)]) {
        const layer = node.outboundLayer;
        const inputs = node.inputTensors.map((tensor) => keys.get(tensor.id));
        // tfjs skips nodes that the model's inputs do not reach; so do we.
        if (inputs.some((key) => key === undefined)) continue;
        const path = prefix + layer.name;
        let outputs: string[];
        if (layer.getClassName() === 'InputLayer') {
          outputs = inputs as string[];
        } else if (isContainer(layer)) {
          outputs = expand(layer, `${path}/`, inputs as string[]);
        } else {
          outputs = node.outputTensors.map((tensor) => `${scope}:${tensor.id}`);
          const { mask: _mask, ...callArgs } = node.callArgs ?? {};
          steps.push({ layer, path, callArgs, inputs: inputs as string[], outputs });
        }
        node.outputTensors.forEach((tensor, i) => keys.set(tensor.id, outputs[i]));
        name(layer.name, outputs);
        if (path !== layer.name) name(path, outputs);
      }
    }
    return container.outputs.map((tensor) => {
      const key = keys.get(tensor.id);
      if (key === undefined) throw new Error(`Model ${container.name} cannot compute its output ${tensor.name} from its inputs.`);
      return key;
    });
  };

  const inputs = model.inputs.map((_, i) => `input:${i}`);
  const outputs = expand(model as unknown as GraphContainer, '', inputs);
  return { inputs, outputs, steps, named };
}

/** Index of the step that writes `key`, or -1 for a model input. */
export function producerIndex(graph: LayerGraph, key: string): number {
  return graph.steps.findIndex((step) => step.outputs.includes(key));
}

/** For each step, whether `key` depends on it: steps that do not are never run. */
export function stepsNeededFor(graph: LayerGraph, key: string): boolean[] {
  const needed = new Set([key]);
  const used = new Array<boolean>(graph.steps.length).fill(false);
  for (let i = graph.steps.length - 1; i >= 0; i--) {
    const step = graph.steps[i];
    if (!step.outputs.some((output) => needed.has(output))) continue;
    used[i] = true;
    for (const input of step.inputs) needed.add(input);
  }
  return used;
}

/** Whether `to` depends on `from`. */
export function dependsOn(graph: LayerGraph, to: string, from: string): boolean {
  if (to === from) return true;
  const needed = stepsNeededFor(graph, to);
  return graph.steps.some((step, i) => needed[i] && step.inputs.includes(from));
}
