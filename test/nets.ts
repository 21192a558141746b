/**
 * Small CNNs for tensor tests and benches, built so that references can be
 * derived from them: every layer lives in a LayerBank, so building a net twice
 * shares its weights, and every layer output passes through a tap, so a twin
 * can add an extra input after any named layer (∂score/∂activation is then
 * the plain tf.grad with respect to that zero-valued input).
 */
import * as tf from '@tensorflow/tfjs';

type Sym = tf.SymbolicTensor;
export type Tap = (name: string, tensor: Sym) => Sym;
export type Builder = (bank: LayerBank, input: Sym) => Sym;

export class LayerBank {
  private readonly layers = new Map<string, tf.layers.Layer>();
  tap: Tap = (_, tensor) => tensor;

  /** The layer called `name` (made on first use), applied to `input`, its output tapped. */
  apply(name: string, make: (name: string) => tf.layers.Layer, input: Sym | Sym[]): Sym {
    let layer = this.layers.get(name);
    if (layer === undefined) {
      layer = make(name);
      this.layers.set(name, layer);
    }
    return this.tap(name, layer.apply(input) as Sym);
  }

  /** A nested model (made on first use) applied as one layer; inside it nothing is tapped. */
  nested(name: string, inputShape: number[], builder: Builder, input: Sym): Sym {
    if (!this.layers.has(name)) {
      const outerTap = this.tap;
      this.tap = (_, tensor) => tensor;
      const inner = tf.input({ shape: inputShape, name: `${name}_input` });
      this.layers.set(name, tf.model({ inputs: inner, outputs: builder(this, inner), name }) as unknown as tf.layers.Layer);
      this.tap = outerTap;
    }
    return this.apply(name, () => { throw new Error('unreachable'); }, input);
  }
}

export interface Net {
  readonly model: tf.LayersModel;
  readonly inputShape: number[];
  readonly build: Builder;
  readonly bank: LayerBank;
}

export function makeNet(name: string, inputShape: number[], build: Builder): Net {
  const bank = new LayerBank();
  const input = tf.input({ shape: inputShape, name: `${name}_input` });
  const model = tf.model({ inputs: input, outputs: build(bank, input), name });
  randomizeWeights(model);
  return { model, inputShape, build, bank };
}

/**
 * Seeded weights with batch norm statistics far from 0/1, so that inference
 * batch norm actually changes values and gradients.
 */
export function randomizeWeights(model: tf.LayersModel, seed = 1): void {
  const values = model.weights.map((weight, i) => {
    const shape = weight.shape as number[];
    const fanIn = shape.length > 1 ? shape.slice(0, -1).reduce((a, b) => a * b, 1) : 1;
    if (/moving_variance|gamma/.test(weight.name)) return tf.randomUniform(shape, 0.5, 1.5, 'float32', seed + i);
    if (/moving_mean|beta|bias/.test(weight.name)) return tf.randomUniform(shape, -0.2, 0.2, 'float32', seed + i);
    const limit = Math.sqrt(3 / fanIn);
    return tf.randomUniform(shape, -limit, limit, 'float32', seed + i);
  });
  model.setWeights(values);
  tf.dispose(values);
}

/**
 * The net's twin with an extra input `delta` added to the output of layer
 * `name`, and a model giving that output: both share the net's weights.
 */
export function tappedTwin(net: Net, name: string): { twin: tf.LayersModel; activation: tf.LayersModel } {
  let captured: Sym | undefined;
  let delta: Sym | undefined;
  net.bank.tap = (tapName, tensor) => {
    if (tapName !== name) return tensor;
    captured = tensor;
    delta = tf.input({ shape: tensor.shape.slice(1) as number[], name: 'delta' });
    return tf.layers.add({ name: 'add_delta' }).apply([tensor, delta]) as Sym;
  };
  const input = tf.input({ shape: net.inputShape });
  const output = net.build(net.bank, input);
  net.bank.tap = (_, tensor) => tensor;
  if (captured === undefined || delta === undefined) throw new Error(`no layer ${name} in this net`);
  return { twin: tf.model({ inputs: [input, delta], outputs: output }), activation: tf.model({ inputs: input, outputs: captured }) };
}

interface ConvOptions {
  strides?: number;
  padding?: 'same' | 'valid';
  activation?: 'relu' | 'linear' | 'sigmoid' | 'softmax';
  useBias?: boolean;
  dilationRate?: number;
}
export const conv = (filters: number, kernelSize: number, options: ConvOptions = {}) =>
  (name: string) => tf.layers.conv2d({ filters, kernelSize, padding: 'same', ...options, name }) as tf.layers.Layer;
const bn = (name: string) => tf.layers.batchNormalization({ name }) as tf.layers.Layer;
const relu6 = (name: string) => tf.layers.reLU({ maxValue: 6, name }) as tf.layers.Layer;

/** conv+bias+relu, max pool, batch norm, depthwise, linear 1×1 conv, ReLU, global average pool, dropout, dense. */
export const smallCnn: Builder = (bank, input) => {
  let x = bank.apply('conv1', conv(8, 3, { activation: 'relu' }), input);
  x = bank.apply('pool', (name) => tf.layers.maxPooling2d({ poolSize: 2, name }), x);
  x = bank.apply('bn1', bn, x);
  x = bank.apply('dw', (name) => tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', activation: 'relu', name }), x);
  x = bank.apply('conv2', conv(16, 1), x);
  x = bank.apply('relu', (name) => tf.layers.reLU({ name }), x);
  x = bank.apply('gap', (name) => tf.layers.globalAveragePooling2d({ name }), x);
  x = bank.apply('drop', (name) => tf.layers.dropout({ rate: 0.5, name }), x);
  return bank.apply('logits', (name) => tf.layers.dense({ units: 5, name }), x);
};

type BlockSpec = [expansion: number, channels: number, repeats: number, stride: number];
/** MobileNetV2's inverted-residual configuration (t, c, n, s). */
export const MOBILENET_V2_BLOCKS: BlockSpec[] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]];
/** The same pattern, smaller: every kind of block (expansion or not, stride 1 and 2, residual or not) once or twice. */
export const SMALL_V2_BLOCKS: BlockSpec[] = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 2, 2]];

/**
 * MobileNetV2 as Keras builds it: stem conv, inverted residual blocks (1×1
 * expansion, depthwise 3×3 — zero-padded and 'valid' at stride 2 — and a
 * linear 1×1 projection, each with batch norm and relu6; a residual Add where
 * shapes allow), a 1×1 head conv, global average pooling and dense logits.
 */
export function mobileNetV2(blocks: BlockSpec[], headChannels: number, classes: number): Builder {
  return (bank, input) => {
    let x = bank.apply('stem_conv', conv(32, 3, { strides: 2, useBias: false }), input);
    x = bank.apply('stem_bn', bn, x);
    x = bank.apply('stem_relu', relu6, x);
    let channels = 32;
    let block = 0;
    for (const [expansion, out, repeats, firstStride] of blocks) {
      for (let r = 0; r < repeats; r++, block++) {
        const stride = r === 0 ? firstStride : 1;
        const p = `block_${block}_`;
        let h = x;
        if (expansion !== 1) {
          h = bank.apply(`${p}expand`, conv(channels * expansion, 1, { useBias: false }), h);
          h = bank.apply(`${p}expand_bn`, bn, h);
          h = bank.apply(`${p}expand_relu`, relu6, h);
        }
        if (stride === 2) h = bank.apply(`${p}pad`, (name) => tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]], name }), h);
        h = bank.apply(`${p}depthwise`, (name) => tf.layers.depthwiseConv2d({ kernelSize: 3, strides: stride, padding: stride === 2 ? 'valid' : 'same', useBias: false, name }), h);
        h = bank.apply(`${p}depthwise_bn`, bn, h);
        h = bank.apply(`${p}depthwise_relu`, relu6, h);
        h = bank.apply(`${p}project`, conv(out, 1, { useBias: false }), h);
        h = bank.apply(`${p}project_bn`, bn, h);
        x = stride === 1 && channels === out ? bank.apply(`${p}add`, (name) => tf.layers.add({ name }), [x, h]) : h;
        channels = out;
      }
    }
    x = bank.apply('head_conv', conv(headChannels, 1, { useBias: false }), x);
    x = bank.apply('head_bn', bn, x);
    x = bank.apply('out_relu', relu6, x);
    x = bank.apply('gap', (name) => tf.layers.globalAveragePooling2d({ name }), x);
    return bank.apply('logits', (name) => tf.layers.dense({ units: classes, name }), x);
  };
}

const stem: Builder = (bank, input) => {
  let x = bank.apply('stem_conv', conv(8, 3), input);
  x = bank.apply('stem_bn', bn, x);
  return bank.apply('stem_relu', (name) => tf.layers.activation({ activation: 'relu', name }), x);
};

/**
 * Two branches joined by Concatenate, a squeeze-and-excitation gate
 * (Multiply), separable conv, average pooling, flatten; the stem either
 * inline or as a nested model — same layers, same weights either way.
 */
export function concatNet(nestedStem: boolean): Builder {
  return (bank, input) => {
    let x = nestedStem ? bank.nested('stem', input.shape.slice(1) as number[], stem, input) : stem(bank, input);
    const a = bank.apply('a_conv', conv(8, 1, { useBias: false }), x);
    let b = bank.apply('b_pad', (name) => tf.layers.zeroPadding2d({ padding: 1, name }), x);
    b = bank.apply('b_conv', conv(8, 3, { padding: 'valid', activation: 'relu' }), b);
    x = bank.apply('cat', (name) => tf.layers.concatenate({ name }), [a, b]);
    let gate = bank.apply('se_gap', (name) => tf.layers.globalAveragePooling2d({ name }), x);
    gate = bank.apply('se_dense', (name) => tf.layers.dense({ units: 16, activation: 'sigmoid', name }), gate);
    gate = bank.apply('se_reshape', (name) => tf.layers.reshape({ targetShape: [1, 1, 16], name }), gate);
    x = bank.apply('se_mul', (name) => tf.layers.multiply({ name }), [x, gate]);
    x = bank.apply('sep', (name) => tf.layers.separableConv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', name }), x);
    x = bank.apply('avg', (name) => tf.layers.averagePooling2d({ poolSize: 2, name }), x);
    x = bank.apply('flat', (name) => tf.layers.flatten({ name }), x);
    return bank.apply('logits', (name) => tf.layers.dense({ units: 4, name }), x);
  };
}
