/**
 * Backward rules of element-wise ops: activations (with tfjs's conventions at
 * the kinks, so that both engines agree there, where PyTorch's agree too;
 * Abs follows PyTorch, 0 at 0, where tfjs passes −dy), broadcasting
 * arithmetic (Max and Min splitting ties evenly as PyTorch does, Mean,
 * Where), Softmax and LogSoftmax.
 */
import type { BackwardContext, BackwardRule, Gradient } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { floatAttribute, intAttribute } from './node-attributes.ts';

const label = (node: GraphNode): string => node.name ?? node.outputs[0];

/** Name of the gradient a node passes to its input `i`. */
export function gradientName(node: GraphNode, i = 0): string {
  return `${node.inputs[i]}.grad.${label(node)}`;
}

function bool(ctx: BackwardContext, op: string, inputs: readonly string[], name: string, shape: readonly number[]): string {
  return ctx.op(op, inputs, name, shape, undefined, 'bool');
}

/** Relu: dy where the input was positive (tfjs: dy·step(x), 0 at x = 0). */
export const reluBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const positive = bool(ctx, 'Greater', [y, ctx.scalar(0)], `${y}.positive`, ctx.shape(y));
  return [{ value: ctx.masked([positive], ctx.materialize(dy), gradientName(node)) }];
};

/**
 * Clip (ReLU6 and its kin): dy where min < x < max, read from the output
 * (min < y < max) so that the forward convolution, batch norm and clip still
 * fuse into one kernel. tfjs's relu6 gradient also passes dy at x = max
 * exactly, which a continuous input reaches with probability zero.
 */
export const clipBackward: BackwardRule = (ctx, node, dy) => {
  const [, min, max] = node.inputs;
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const conditions: string[] = [];
  if (min !== undefined && min !== '') conditions.push(bool(ctx, 'Greater', [y, min], `${y}.aboveMin`, shape));
  if (max !== undefined && max !== '') conditions.push(bool(ctx, 'Less', [y, max], `${y}.belowMax`, shape));
  const g = ctx.materialize(dy);
  if (conditions.length === 0) return [{ value: g }];
  return [{ value: ctx.masked(conditions, g, gradientName(node)) }];
};

/** dy·y·(1 − y). */
export const sigmoidBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const slope = ctx.op('Mul', [y, ctx.op('Sub', [ctx.scalar(1), y], `${y}.complement`, shape)], `${y}.slope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

/** dy·(1 − y²). */
export const tanhBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const slope = ctx.op('Sub', [ctx.scalar(1), ctx.op('Mul', [y, y], `${y}.squared`, shape)], `${y}.slope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

/** dy where y ≥ 0, else dy·(y + α) (tfjs's EluGrad). */
export const eluBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const alpha = floatAttribute(node, 'alpha', 1);
  const g = ctx.materialize(dy);
  const nonNegative = bool(ctx, 'GreaterOrEqual', [y, ctx.scalar(0)], `${y}.nonNegative`, shape);
  const negative = ctx.op('Mul', [g, ctx.op('Add', [y, ctx.scalar(alpha)], `${y}.slope`, shape)], `${g}.elu`, shape);
  return [{ value: ctx.op('Where', [nonNegative, g, negative], gradientName(node), shape) }];
};

/** dy·sigmoid(x). */
export const softplusBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const shape = ctx.shape(x);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), ctx.op('Sigmoid', [x], `${x}.sigmoid`, shape)], gradientName(node), shape) }];
};

/** dy where x > 0 (read from y where α ≥ 0 keeps the sign), else α·dy. */
export const leakyReluBackward: BackwardRule = (ctx, node, dy) => {
  const alpha = floatAttribute(node, 'alpha', 0.01);
  const source = alpha >= 0 ? node.outputs[0] : node.inputs[0];
  const shape = ctx.shape(source);
  const g = ctx.materialize(dy);
  const positive = bool(ctx, 'Greater', [source, ctx.scalar(0)], `${source}.positive`, shape);
  const leaked = ctx.op('Mul', [g, ctx.scalar(alpha)], `${g}.leaked`, shape);
  return [{ value: ctx.op('Where', [positive, g, leaked], gradientName(node), shape) }];
};

/**
 * HardSigmoid, y = max(0, min(1, αx + β)): α·dy where 0 < αx + β < 1, else
 * 0 — tested on x against the two kinks −β/α and (1 − β)/α, so that
 * PyTorch's export (α = 1/6, β = ½) passes grad/6 exactly for −3 < x < 3, as
 * its hardsigmoid_backward does.
 */
export const hardSigmoidBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const shape = ctx.shape(x);
  const alpha = floatAttribute(node, 'alpha', 0.2);
  const beta = floatAttribute(node, 'beta', 0.5);
  if (alpha === 0) return [{ value: ctx.zeros(shape, gradientName(node)) }];
  const kinks = [-beta / alpha, (1 - beta) / alpha];
  const [low, high] = alpha > 0 ? kinks : [kinks[1], kinks[0]];
  const above = bool(ctx, 'Greater', [x, ctx.scalar(low)], `${x}.aboveLowKink`, shape);
  const below = bool(ctx, 'Less', [x, ctx.scalar(high)], `${x}.belowHighKink`, shape);
  const g = ctx.materialize(dy);
  return [{ value: ctx.masked([above, below], ctx.op('Mul', [g, ctx.scalar(alpha)], `${g}.timesAlpha`, shape), gradientName(node)) }];
};

/** HardSwish, x·max(0, min(1, x/6 + ½)), as PyTorch's hardswish_backward: 0 for x < −3, dy·(x/3 + ½) for x ≤ 3, dy above. */
export const hardSwishBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const shape = ctx.shape(x);
  const linear = ctx.op('Add', [ctx.op('Div', [x, ctx.scalar(3)], `${x}.third`, shape), ctx.scalar(0.5)], `${x}.hardSwishRamp`, shape);
  const upTo3 = bool(ctx, 'LessOrEqual', [x, ctx.scalar(3)], `${x}.atMost3`, shape);
  const belowMinus3 = bool(ctx, 'Less', [x, ctx.scalar(-3)], `${x}.belowMinus3`, shape);
  const ramped = ctx.op('Where', [upTo3, linear, ctx.scalar(1)], `${x}.hardSwishUpper`, shape);
  const slope = ctx.op('Where', [belowMinus3, ctx.scalar(0), ramped], `${x}.hardSwishSlope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

/** dy·(2/√π)·exp(−x²). */
export const erfBackward: BackwardRule = (ctx, node, dy) => {
  const x = node.inputs[0];
  const shape = ctx.shape(x);
  const bell = ctx.op('Exp', [ctx.op('Neg', [ctx.op('Mul', [x, x], `${x}.squared`, shape)], `${x}.negSquared`, shape)], `${x}.bell`, shape);
  const slope = ctx.op('Mul', [bell, ctx.scalar(2 / Math.sqrt(Math.PI))], `${x}.erfSlope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

export const negBackward: BackwardRule = (ctx, node, dy) => {
  const g = ctx.materialize(dy);
  return [{ value: ctx.op('Neg', [g], gradientName(node), ctx.shape(g)) }];
};

/** dy/(2y), y = √x (PyTorch's sqrt backward). */
export const sqrtBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  return [{ value: ctx.op('Div', [ctx.materialize(dy), ctx.op('Mul', [y, ctx.scalar(2)], `${y}.doubled`, shape)], gradientName(node), shape) }];
};

/** dy·y. */
export const expBackward: BackwardRule = (ctx, node, dy) => [{ value: ctx.op('Mul', [ctx.materialize(dy), node.outputs[0]], gradientName(node), ctx.shape(node.outputs[0])) }];

/** x^p for a constant one-valued exponent p: dy·p·x^(p−1) (0 for p = 0, as PyTorch's pow_backward). */
export const powBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, exponent] = node.inputs;
  const label = node.name ?? node.outputs[0];
  if (wants[1]) throw new Error(`Pow ${label}: only the base is differentiated, not the exponent`);
  const values = ctx.floats(exponent) ?? ctx.ints(exponent);
  if (!values || values.length !== 1) throw new Error(`Pow ${label}: the exponent must be a constant with one value`);
  const p = values[0];
  const g = ctx.materialize(dy);
  const shape = ctx.shape(g);
  const name = gradientName(node);
  let full: string;
  if (p === 0) return [{ value: ctx.zeros(ctx.shape(x), name) }];
  if (p === 1) full = g;
  else if (p === 2) full = ctx.op('Mul', [g, ctx.op('Mul', [x, ctx.scalar(2)], `${x}.doubled`, ctx.shape(x))], `${name}.full`, shape);
  else {
    const power = ctx.op('Pow', [x, ctx.scalar(p - 1)], `${x}.pow${p - 1}`, ctx.shape(x));
    full = ctx.op('Mul', [g, ctx.op('Mul', [power, ctx.scalar(p)], `${power}.timesExponent`, ctx.shape(x))], `${name}.full`, shape);
  }
  return [{ value: reduceTo(ctx, full, ctx.shape(x), name) }];
};

/** A Cast from float to float passes the gradient; a gradient never reaches an integer input (only float values get gradients). */
export const castBackward: BackwardRule = (ctx, node, dy) => [ctx.builder.dtype(node.inputs[0]) === 'float32' ? dy : undefined];

/** y·(dy − Σ dy·y) over the softmax axis. */
export const softmaxBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const axis = (intAttribute(node, 'axis', -1) + shape.length) % shape.length;
  const g = ctx.materialize(dy);
  const product = ctx.op('Mul', [g, y], `${g}.timesY`, shape);
  const total = ctx.op('ReduceSum', [product, ctx.int64(`${y}.axis`, [axis])], `${g}.total`, shape.map((size, i) => (i === axis ? 1 : size)), { keepdims: { int: 1 } });
  const centred = ctx.op('Sub', [g, total], `${g}.centred`, shape);
  return [{ value: ctx.op('Mul', [y, centred], gradientName(node), shape) }];
};

/** g (of a broadcast result's shape) summed down to `target`, the shape of the operand that was broadcast. */
export function reduceTo(ctx: BackwardContext, g: string, target: readonly number[], name: string): string {
  const shape = ctx.shape(g);
  if (shape.length === target.length && shape.every((size, i) => size === target[i])) return g;
  const offset = shape.length - target.length;
  const axes = shape.flatMap((size, i) => (i < offset || (target[i - offset] === 1 && size !== 1) ? [i] : []));
  const summed = axes.length === 0
    ? g
    : ctx.op('ReduceSum', [g, ctx.int64(`${name}.axes`, axes)], `${name}.summed`, shape.map((size, i) => (axes.includes(i) ? 1 : size)), { keepdims: { int: 1 } });
  return ctx.reshape(summed, target, name);
}

function operandGradient(ctx: BackwardContext, node: GraphNode, i: number, g: string): Gradient {
  return { value: reduceTo(ctx, g, ctx.shape(node.inputs[i]), gradientName(node, i)) };
}

export const addBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  return node.inputs.map((_, i) => (wants[i] ? operandGradient(ctx, node, i, g) : undefined));
};

export const subBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  return [
    wants[0] ? operandGradient(ctx, node, 0, g) : undefined,
    wants[1] ? operandGradient(ctx, node, 1, ctx.op('Neg', [g], `${g}.negated`, ctx.shape(g))) : undefined,
  ];
};

export const mulBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  const shape = ctx.shape(g);
  return [0, 1].map((i) => (wants[i] ? operandGradient(ctx, node, i, ctx.op('Mul', [g, node.inputs[1 - i]], `${gradientName(node, i)}.full`, shape)) : undefined));
};

/** d(a/b) = da/b − db·(a/b)/b. */
export const divBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  const shape = ctx.shape(g);
  const quotient = ctx.op('Div', [g, node.inputs[1]], `${g}.overDivisor`, shape);
  const divisorGradient = (): string => ctx.op('Neg', [ctx.op('Mul', [quotient, node.outputs[0]], `${quotient}.timesY`, shape)], `${gradientName(node, 1)}.full`, shape);
  return [wants[0] ? operandGradient(ctx, node, 0, quotient) : undefined, wants[1] ? operandGradient(ctx, node, 1, divisorGradient()) : undefined];
};

/**
 * PRelu, y = x for x > 0 else slope·x, the slope broadcast to x (PyTorch
 * exports a per-channel slope as [C, 1, 1]): dx = dy where x > 0, else
 * slope·dy; dslope = Σ dy·x where x ≤ 0 (PyTorch's prelu backward: the
 * slope's side at x = 0).
 */
export const preluBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [x, slope] = node.inputs;
  const shape = ctx.shape(x);
  const g = ctx.materialize(dy);
  const positive = ctx.memo(`positive:${x}`, () => bool(ctx, 'Greater', [x, ctx.scalar(0)], `${x}.positive`, shape));
  const result: Array<Gradient | undefined> = [undefined, undefined];
  if (wants[0]) result[0] = { value: ctx.op('Where', [positive, g, ctx.op('Mul', [g, slope], `${g}.timesSlope`, shape)], gradientName(node), shape) };
  if (wants[1]) {
    const full = ctx.op('Where', [positive, ctx.scalar(0), ctx.op('Mul', [g, x], `${g}.timesX`, shape)], `${gradientName(node, 1)}.full`, shape);
    result[1] = { value: reduceTo(ctx, full, ctx.shape(slope), gradientName(node, 1)) };
  }
  return result;
};

/**
 * Selu, y = γ·x for x > 0 else γ·α·(eˣ − 1): dy·γ for x > 0, else
 * dy·(y + γ·α) = dy·γ·α·eˣ (PyTorch's and tfjs's, the exponential side at 0).
 */
export const seluBackward: BackwardRule = (ctx, node, dy) => {
  const [x] = node.inputs;
  const y = node.outputs[0];
  const shape = ctx.shape(x);
  const alpha = floatAttribute(node, 'alpha', 1.67326319217681884765625);
  const gamma = floatAttribute(node, 'gamma', 1.05070102214813232421875);
  const positive = bool(ctx, 'Greater', [x, ctx.scalar(0)], `${x}.positive`, shape);
  const slope = ctx.op('Where', [positive, ctx.scalar(gamma), ctx.op('Add', [y, ctx.scalar(gamma * alpha)], `${y}.seluNegativeSlope`, shape)], `${y}.seluSlope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

/** Celu, y = max(0, x) + min(0, α·(e^(x/α) − 1)): dy for x > 0, else dy·e^(x/α) = dy·(y/α + 1) (1 at 0, as PyTorch's). */
export const celuBackward: BackwardRule = (ctx, node, dy) => {
  const [x] = node.inputs;
  const y = node.outputs[0];
  const shape = ctx.shape(x);
  const alpha = floatAttribute(node, 'alpha', 1);
  const positive = bool(ctx, 'Greater', [x, ctx.scalar(0)], `${x}.positive`, shape);
  const negative = ctx.op('Add', [ctx.op('Mul', [y, ctx.scalar(1 / alpha)], `${y}.overAlpha`, shape), ctx.scalar(1)], `${y}.celuNegativeSlope`, shape);
  const slope = ctx.op('Where', [positive, ctx.scalar(1), negative], `${y}.celuSlope`, shape);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), slope], gradientName(node), shape) }];
};

/** Softsign, y = x/(1 + |x|): dy/(1 + |x|)². */
export const softsignBackward: BackwardRule = (ctx, node, dy) => {
  const [x] = node.inputs;
  const shape = ctx.shape(x);
  const denominator = ctx.op('Add', [ctx.op('Abs', [x], `${x}.abs`, shape), ctx.scalar(1)], `${x}.softsignDenominator`, shape);
  const squared = ctx.op('Mul', [denominator, denominator], `${x}.softsignDenominatorSquared`, shape);
  return [{ value: ctx.op('Div', [ctx.materialize(dy), squared], gradientName(node), shape) }];
};

/** dy·sign(x): 0 at x = 0, as PyTorch's and tfjs's. */
export const absBackward: BackwardRule = (ctx, node, dy) => {
  const [x] = node.inputs;
  const shape = ctx.shape(x);
  return [{ value: ctx.op('Mul', [ctx.materialize(dy), ctx.op('Sign', [x], `${x}.sign`, shape)], gradientName(node), shape) }];
};

/** dy/x. */
export const logBackward: BackwardRule = (ctx, node, dy) => [{ value: ctx.op('Div', [ctx.materialize(dy), node.inputs[0]], gradientName(node), ctx.shape(node.inputs[0])) }];

/** y = 1/x: −dy·y². */
export const reciprocalBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const squared = ctx.op('Mul', [y, y], `${y}.squared`, shape);
  return [{ value: ctx.op('Neg', [ctx.op('Mul', [ctx.materialize(dy), squared], `${gradientName(node)}.positive`, shape)], gradientName(node), shape) }];
};

/** Mean of n broadcast operands: dy/n to each, summed down to its shape. */
export const meanBackward: BackwardRule = (ctx, node, dy, wants) => {
  const g = ctx.materialize(dy);
  const n = node.inputs.length;
  const share = n === 1 ? g : ctx.op('Mul', [g, ctx.scalar(1 / n)], `${g}.share`, ctx.shape(g));
  return node.inputs.map((_, i) => (wants[i] ? operandGradient(ctx, node, i, share) : undefined));
};

/**
 * Max and Min, element-wise over n broadcast operands: dy to the operands
 * equal to the result, split evenly where several are (PyTorch's
 * maximum/minimum give each of two tied operands half; tfjs gives it all to
 * the first): dxᵢ = dy·[xᵢ = y]/Σⱼ[xⱼ = y], summed down to xᵢ's shape.
 */
export const maxMinBackward: BackwardRule = (ctx, node, dy, wants) => {
  if (node.inputs.length === 1) return [dy];
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const g = ctx.materialize(dy);
  const label = node.name ?? y;
  // Each operand compared with y broadcasts to y's shape.
  const selected = node.inputs.map((x, i) => ctx.op('Cast', [bool(ctx, 'Equal', [x, y], `${label}.selects${i}`, shape)], `${label}.selects${i}.float`, shape, { to: { int: 1 } }));
  const count = ctx.sum(selected, `${label}.ties`, shape);
  const share = ctx.op('Div', [g, count], `${g}.perTie`, shape);
  return node.inputs.map((_, i) => (wants[i] ? operandGradient(ctx, node, i, ctx.op('Mul', [share, selected[i]], `${gradientName(node, i)}.full`, shape)) : undefined));
};

/** Where(condition, X, Y): dy to X where the condition holds, to Y elsewhere, each summed down to its shape; the condition gets none. */
export const whereBackward: BackwardRule = (ctx, node, dy, wants) => {
  const [condition] = node.inputs;
  const g = ctx.materialize(dy);
  const shape = ctx.shape(g);
  const zero = ctx.scalar(0);
  return [
    undefined,
    wants[1] ? operandGradient(ctx, node, 1, ctx.op('Where', [condition, g, zero], `${gradientName(node, 1)}.full`, shape)) : undefined,
    wants[2] ? operandGradient(ctx, node, 2, ctx.op('Where', [condition, zero, g], `${gradientName(node, 2)}.full`, shape)) : undefined,
  ];
};

/** y = x − log Σ eˣ over the axis: dy − eʸ·Σ dy. */
export const logSoftmaxBackward: BackwardRule = (ctx, node, dy) => {
  const y = node.outputs[0];
  const shape = ctx.shape(y);
  const axis = (intAttribute(node, 'axis', -1) + shape.length) % shape.length;
  const g = ctx.materialize(dy);
  const total = ctx.op('ReduceSum', [g, ctx.int64(`${y}.axis`, [axis])], `${g}.total`, shape.map((size, i) => (i === axis ? 1 : size)), { keepdims: { int: 1 } });
  const softmax = ctx.op('Exp', [y], `${y}.softmax`, shape);
  return [{ value: ctx.op('Sub', [g, ctx.op('Mul', [softmax, total], `${g}.spread`, shape)], gradientName(node), shape) }];
};
