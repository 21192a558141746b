/**
 * The engine settings golden tests run on: a tfjs backend (`cpu`, `wasm`),
 * where the network and the per-image math both run, or ONNX Runtime on a
 * device (`onnx:cpu`…), where the network runs in ONNX Runtime and the
 * per-image math on tfjs-cpu. LoadedModels made after `useEngine` use it.
 */
import { availableParallelism } from 'node:os';
import { setEngineChoice, type OnnxDevice } from '../src/core/tensor/engine-choice.ts';
import { useBackend } from './torchvision-golden.ts';

export type EngineSetting = 'cpu' | 'wasm' | `onnx:${OnnxDevice}`;

export async function useEngine(setting: EngineSetting): Promise<void> {
  if (setting.startsWith('onnx:')) {
    await useBackend('cpu');
    setEngineChoice({ engine: 'onnx', device: setting.slice('onnx:'.length) as OnnxDevice, threads: availableParallelism() });
    return;
  }
  await useBackend(setting as 'cpu' | 'wasm');
  setEngineChoice({ engine: 'tfjs' });
}
