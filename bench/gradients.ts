/**
 * Input gradient of a MobileNetV2-shaped net (MobileNetV2's full block
 * configuration, 64×64, batch 4) on the cpu backend: plain tf.grad through
 * model.apply against inputGradient, which holds the weights constant.
 * Prints ms per call (median), the ratio measured in the same run, and the
 * weight-gradient kernels each path ran; a plain forward pass for scale.
 * Run: node --import tsx bench/gradients.ts [repeats]
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { inputGradient } from '../src/core/tensor/gradients.ts';
import { makeNet, MOBILENET_V2_BLOCKS, mobileNetV2 } from '../test/nets.ts';

await tf.setBackend('cpu');
const repeats = Number(process.argv[2] ?? 5);
const net = makeNet('mobilenet_v2_64', [64, 64, 3], mobileNetV2(MOBILENET_V2_BLOCKS, 1280, 10));
const x = tf.randomUniform([4, 64, 64, 3], -1, 1, 'float32', 1);
const target = [0, 3, 6, 9];
const mask = tf.oneHot(target, 10, 1, 0, 'float32');

const paths: Record<string, () => tf.Tensor> = {
  'forward only': () => net.model.predict(x) as tf.Tensor,
  'plain tf.grad': () => tf.grad((input: tf.Tensor) => tf.sum(tf.mul(net.model.apply(input) as tf.Tensor, mask)))(x),
  inputGradient: () => inputGradient(net.model, x, target),
};

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

const times: Record<string, number[]> = Object.fromEntries(Object.keys(paths).map((name) => [name, []]));
for (const run of Object.values(paths)) tf.dispose(run());
// Interleaved, so drift in machine load hits both paths alike.
for (let r = 0; r < repeats; r++) {
  for (const [name, run] of Object.entries(paths)) {
    const start = performance.now();
    const gradient = run();
    gradient.dataSync();
    times[name].push(performance.now() - start);
    gradient.dispose();
  }
}

console.log(`MobileNetV2-shaped net (${net.model.countParams().toLocaleString('en')} params), 64×64, batch 4, cpu backend, median of ${repeats}`);
for (const [name, run] of Object.entries(paths)) {
  const profile = await tf.profile(run);
  tf.dispose(profile.result as tf.Tensor);
  const wasted = profile.kernels.filter((kernel) => /BackpropFilter/.test(kernel.name));
  const wastedMs = wasted.reduce((sum, kernel) => sum + (kernel.kernelTimeMs as number), 0);
  console.log(`  ${name.padEnd(14)} ${median(times[name]).toFixed(0).padStart(6)} ms/call   ${profile.kernels.length} kernels, ${wasted.length} *BackpropFilter (${wastedMs.toFixed(0)} ms)`);
}
console.log(`  speed-up: ${(median(times['plain tf.grad']) / median(times.inputGradient)).toFixed(2)}×`);
tf.dispose([x, mask]);
