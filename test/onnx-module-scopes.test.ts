/**
 * Guided backprop and DeepLift modify the gradients of modules, as Captum's
 * hooks do: in a graph torch.onnx.export wrote, a node is a module where it
 * is alone in its module scope. Checked on a small graph against the rules
 * written out by hand: x → SiLU (Sigmoid and Mul in one scope) → a lone
 * nn.Sigmoid gate → a MatMul head; and nn.ReLU(x) plus a functional
 * relu(−x) (in the forward of a module that holds another) → the head.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGradientGraph, type GradientRule } from '../src/core/tensor/onnx/gradient.ts';
import { GraphBuilder } from '../src/core/tensor/onnx/graph-builder.ts';
import { serializeGraph } from '../src/core/tensor/onnx/serialize.ts';
import { OnnxSession } from '../src/core/tensor/onnx/session.ts';

const FEATURES = 3;
const CLASSES = 2;
const W = Float32Array.of(0.7, -0.4, -1.1, 0.5, 0.3, 0.9);
/** Row 0 the input, row 1 its reference (DeepLift's batch [inputs; references]). */
const X = Float32Array.of(1.3, -0.6, 0.4, -0.2, 0.5, -0.9);
const TARGET = 0;

/** The graph, its nodes named with torch module scopes (`/act/Sigmoid`) or, with `scoped` false, without. */
function graph(head: 'silu-gate' | 'relus', scoped: boolean) {
  const b = new GraphBuilder(`scopes-${head}`);
  const x = b.addInput('x', [2, FEATURES]);
  const shape = [2, FEATURES];
  const node = (op: string, inputs: string[], out: string, scope: string, outShape = shape) =>
    b.node(op, inputs, [{ name: out, shape: outShape }], undefined, scoped ? `${scope}/${op}` : undefined)[0];
  let features: string;
  if (head === 'silu-gate') {
    const sigmoid = node('Sigmoid', [x], 'act.sigmoid', '/act');
    const silu = node('Mul', [x, sigmoid], 'act.out', '/act');
    features = node('Sigmoid', [silu], 'gate.out', '/gate');
  } else {
    // A functional relu alone in the scope of a module that holds another (as F.relu in GoogLeNet's BasicConv2d).
    const functional = node('Relu', [node('Neg', [x], 'negated', '/block/negate')], 'functional', '/block');
    features = node('Add', [node('Relu', [x], 'module', '/relu'), functional], 'summed', '');
  }
  const logits = node('MatMul', [features, b.float32('head.weight', W, [FEATURES, CLASSES])], 'logits', '/head', [2, CLASSES]);
  b.addOutput(logits);
  return { graph: b.build(), x, logits };
}

async function inputGradient(head: 'silu-gate' | 'relus', scoped: boolean, rule: GradientRule): Promise<Float32Array> {
  const { graph: forward, x, logits } = graph(head, scoped);
  const built = buildGradientGraph(forward, { input: x, score: logits, layers: [], inputGradient: true, rule });
  const session = await OnnxSession.create(serializeGraph(built.graph), { device: 'cpu', threads: 1 });
  try {
    const targets = new Float32Array(2 * CLASSES);
    targets[TARGET] = 1;
    targets[CLASSES + TARGET] = 1;
    const all = await session.run({ [x]: { data: X, shape: [2, FEATURES] }, [built.targets]: { data: targets, shape: [2, CLASSES] } }, session.outputNames);
    return all[session.outputNames.indexOf(built.input as string)].data;
  } finally {
    await session.release();
  }
}

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));
const silu = (v: number) => v * sigmoid(v);
const siluSlope = (v: number) => sigmoid(v) * (1 + v * (1 - sigmoid(v)));
const weight = (i: number) => W[i * CLASSES + TARGET];

function assertNear(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) < 1e-5, `${what}[${i}]: ${actual[i]} against ${expected[i]}`);
}

describe('guided backprop and DeepLift modify modules, as Captum hooks them', () => {
  it('DeepLift rescales a lone nn.Sigmoid, but not the Sigmoid inside SiLU', async () => {
    // Input row: the gate's rescale Δs/Δy (y = silu(x), against the reference row), then SiLU's own derivative.
    const expected = Array.from({ length: FEATURES }, (_, i) => {
      const [x, r] = [X[i], X[FEATURES + i]];
      const rescale = (sigmoid(silu(x)) - sigmoid(silu(r))) / (silu(x) - silu(r));
      return weight(i) * rescale * siluSlope(x);
    });
    const scoped = await inputGradient('silu-gate', true, 'deeplift');
    assertNear(scoped.slice(0, FEATURES), expected, 'scoped DeepLift');
    // Without scopes every node is a module: SiLU's Sigmoid is rescaled too, which differs.
    const unscoped = await inputGradient('silu-gate', false, 'deeplift');
    assert.ok(Array.from(unscoped.slice(0, FEATURES)).some((v, i) => Math.abs(v - expected[i]) > 1e-3), 'unscoped DeepLift rescales SiLU’s Sigmoid as well');
  });

  it('guided backprop modifies nn.ReLU, not a functional relu in the model’s forward', async () => {
    // features = nn.ReLU(x) + relu(−x): the module passes relu(dy) where x > 0; the functional relu passes −dy where x < 0 (plain).
    const expected = Array.from({ length: FEATURES }, (_, i) => (X[i] > 0 ? Math.max(weight(i), 0) : -weight(i)));
    assertNear((await inputGradient('relus', true, 'guided')).slice(0, FEATURES), expected, 'scoped guided');
    // Without scopes both are modules: the second passes −relu(dy) where x < 0.
    const allModules = Array.from({ length: FEATURES }, (_, i) => (X[i] > 0 ? Math.max(weight(i), 0) : -Math.max(weight(i), 0)));
    assertNear((await inputGradient('relus', false, 'guided')).slice(0, FEATURES), allModules, 'unscoped guided');
    assert.ok(expected.some((v, i) => Math.abs(v - allModules[i]) > 0.5), 'the case tells the two apart');
  });
});
