/**
 * Which engine runs the networks in this process: set once when the backend
 * is chosen (backend.ts), read wherever a model is loaded for explaining or
 * scoring. Like the tfjs backend it is global: a worker process runs one
 * engine.
 */
export type OnnxDevice = 'cpu' | 'webgpu' | 'cuda';

export type EngineChoice =
  | { readonly engine: 'tfjs' }
  | { readonly engine: 'onnx'; readonly device: OnnxDevice; readonly threads: number };

let current: EngineChoice = { engine: 'tfjs' };

export function engineChoice(): EngineChoice {
  return current;
}

export function setEngineChoice(choice: EngineChoice): void {
  current = choice;
}
