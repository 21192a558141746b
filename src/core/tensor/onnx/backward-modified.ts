/**
 * Modified backward rules, as the tfjs engine's modified-backprop.ts defines
 * them (and Captum 0.8 computes them):
 *
 * - guided backprop: a Relu passes back relu(dy) where its input was
 *   positive. Only Relu: Captum hooks nn.ReLU alone, not ReLU6 (Clip). Max
 *   pooling keeps its plain backward, which already routes to the first
 *   maximum as PyTorch does.
 * - DeepLift's rescale rule, for a batch holding the inputs and then, in the
 *   same order, their references: at Relu, Elu, Sigmoid, Tanh and Softplus
 *   the gradient becomes dy·Δy/Δx (Δ: input minus reference), the plain
 *   gradient where |Δx| < ε; at max pooling Captum's own rule splits the
 *   output differences at the cross maximum of input and reference. Where a
 *   rule node reads another rule node's output, Captum's hooks let the
 *   upstream rule see the gradient before the downstream rule replaced it:
 *   each rule's Δ branch therefore reads dy's `plain` view (see Gradient).
 *
 * Captum hooks modules (nn.ReLU, nn.Sigmoid, nn.MaxPool2d…), not ops. In a
 * graph exported by torch.onnx.export each node's name carries its module
 * scope (`/features/features.0/features.0.2/Sigmoid`), so a rule applies
 * only to a node that is the whole of its module: the Sigmoid inside SiLU
 * (Sigmoid and Mul in one scope), Mish's Softplus and Tanh, or a functional
 * F.relu in some module's forward (GoogLeNet's BasicConv2d) keep their plain
 * gradients there, as Captum leaves them. Nodes without such scopes
 * (salgrid's own exports) are each a module.
 */
import type { BackwardContext, BackwardRule, GradientRule } from './backward-context.ts';
import type { GraphNode } from './graph.ts';
import { gradientName } from './backward-elementwise.ts';
import { floatAttribute } from './node-attributes.ts';

/** Captum DeepLift's ε: below it a difference from the reference counts as none. */
export const DEEPLIFT_EPS = 1e-10;

/** Where a Relu's or Elu's input was positive, read from its output (y > 0 exactly there), so the forward op can still fuse with the one before it. */
function positive(ctx: BackwardContext, node: GraphNode): string {
  const y = node.outputs[0];
  return ctx.memo(`positive:${y}`, () => ctx.op('Greater', [y, ctx.scalar(0)], `${y}.positive`, ctx.shape(y), undefined, 'bool'));
}

const guidedRelu: BackwardRule = (ctx, node, dy) => {
  const g = ctx.materialize(dy);
  return [{ value: ctx.masked([positive(ctx, node)], ctx.op('Relu', [g], `${g}.positivePart`, ctx.shape(g)), gradientName(node)) }];
};

/** An activation's plain gradient under DeepLift's own derivatives (modified-backprop.ts RESCALED): the |Δx| < ε case. */
type PlainGradient = (ctx: BackwardContext, node: GraphNode, g: string, name: string) => string;

const plainGradients: Record<string, PlainGradient> = {
  Relu: (ctx, node, g, name) => ctx.masked([positive(ctx, node)], g, name),
  Elu: (ctx, node, g, name) => {
    const y = node.outputs[0];
    const shape = ctx.shape(y);
    const slope = ctx.op('Add', [y, ctx.scalar(floatAttribute(node, 'alpha', 1))], `${y}.slope`, shape);
    return ctx.op('Where', [positive(ctx, node), g, ctx.op('Mul', [g, slope], `${name}.negative`, shape)], name, shape);
  },
  Sigmoid: (ctx, node, g, name) => {
    const y = node.outputs[0];
    const shape = ctx.shape(y);
    const slope = ctx.op('Mul', [y, ctx.op('Sub', [ctx.scalar(1), y], `${y}.complement`, shape)], `${y}.slope`, shape);
    return ctx.op('Mul', [g, slope], name, shape);
  },
  Tanh: (ctx, node, g, name) => {
    const y = node.outputs[0];
    const shape = ctx.shape(y);
    const slope = ctx.op('Sub', [ctx.scalar(1), ctx.op('Mul', [y, y], `${y}.squared`, shape)], `${y}.slope`, shape);
    return ctx.op('Mul', [g, slope], name, shape);
  },
  Softplus: (ctx, node, g, name) => {
    const x = node.inputs[0];
    return ctx.op('Mul', [g, ctx.op('Sigmoid', [x], `${x}.sigmoid`, ctx.shape(x))], name, ctx.shape(x));
  },
};

/** For x in a batch [inputs; references]: where |Δx| < ε, and Δx with 1 there (safe to divide by); both [1, pairs, ...]. */
function guardedDelta(ctx: BackwardContext, x: string): { small: string; safe: string } {
  return ctx.memo(`guardedDelta:${x}`, () => {
    const delta = ctx.pairedDelta(x);
    const half = ctx.shape(delta);
    const small = ctx.op('Less', [ctx.op('Abs', [delta], `${delta}.abs`, half), ctx.scalar(DEEPLIFT_EPS)], `${delta}.small`, half, undefined, 'bool');
    return { small, safe: ctx.op('Where', [small, ctx.scalar(1), delta], `${delta}.safe`, half) };
  });
}

/** where(|Δx| < ε, plain, ratio) over the batch viewed as pairs; `ratio` broadcasts to [2, pairs, ...]. The result as x is shaped. */
function choose(ctx: BackwardContext, x: string, plain: string, ratio: string, name: string): string {
  const chosen = ctx.op('Where', [guardedDelta(ctx, x).small, ctx.pairView(plain), ratio], `${name}.pairs`, ctx.shape(ctx.pairView(plain)));
  return ctx.reshape(chosen, ctx.shape(x), name);
}

function deepLiftActivation(plainGradient: PlainGradient): BackwardRule {
  return (ctx, node, dy) => {
    const [x, y] = [node.inputs[0], node.outputs[0]];
    const name = gradientName(node);
    const g = ctx.materialize(dy);
    const plain = plainGradient(ctx, node, g, `${name}.plain`);
    const multiplier = ctx.op('Div', [ctx.pairedDelta(y), guardedDelta(ctx, x).safe], `${name}.multiplier`, ctx.shape(ctx.pairedDelta(y)));
    const seen = ctx.pairView(dy.plain ?? g);
    const ratio = ctx.op('Mul', [seen, multiplier], `${name}.ratio`, ctx.shape(seen));
    return [{ value: choose(ctx, x, plain, ratio, name), plain }];
  };
}

/**
 * Captum's max-pool rule: the output differences split at the cross maximum
 * c = max(y, y_ref) — c − y_ref routed to the input's maxima, y − c to the
 * reference's — summed per pair and divided by Δx.
 */
const deepLiftMaxPool: BackwardRule = (ctx, node, dy) => {
  const [x, y] = [node.inputs[0], node.outputs[0]];
  const name = gradientName(node);
  const g = ctx.materialize(dy);
  const plain = ctx.routeToMaxima(node, g, `${name}.plain`);
  const [inputs, references] = ctx.halves(y);
  const half = ctx.shape(inputs);
  const cross = ctx.maximum(inputs, references, `${y}.cross`, half);
  const pairs = [2, ...half.slice(1)];
  const deltaOut = ctx.op('Concat', [ctx.op('Sub', [cross, references], `${y}.toInput`, half), ctx.op('Sub', [inputs, cross], `${y}.toReference`, half)], `${y}.deltaOut`, pairs, { axis: { int: 0 } });
  const seen = ctx.pairView(dy.plain ?? g);
  const weighted = ctx.reshape(ctx.op('Mul', [seen, deltaOut], `${name}.weighted`, pairs), ctx.shape(y), `${name}.weighted.rows`);
  const routed = ctx.pairView(ctx.routeToMaxima(node, weighted, `${name}.routed`));
  const both = ctx.op('ReduceSum', [routed, ctx.int64(`${name}.pairAxis`, [0])], `${name}.both`, [1, ...ctx.shape(routed).slice(1)], { keepdims: { int: 1 } });
  const ratio = ctx.op('Div', [both, guardedDelta(ctx, x).safe], `${name}.ratio`, ctx.shape(both));
  return [{ value: choose(ctx, x, plain, ratio, name), plain }];
};

/** The module scope of a node torch.onnx.export named (its name up to the op), or undefined: not such a name, or the model's own forward. */
function moduleScope(node: GraphNode): string | undefined {
  const name = node.name;
  if (!name?.startsWith('/')) return undefined;
  return name.slice(0, name.lastIndexOf('/'));
}

/**
 * Whether `node` is a whole module as Captum hooks one: the only node of a
 * torch module scope that holds no other module (`/relu/Relu`, not
 * `/conv1/Relu` beside `/conv1/conv/Conv`: a functional relu in
 * BasicConv2d's forward), or a node without a scope.
 */
function wholeModule(ctx: BackwardContext, node: GraphNode): boolean {
  const scope = moduleScope(node);
  if (scope === undefined) return true;
  if (scope === '') return false;
  const scopes = ctx.memo('moduleScopes', () => {
    const sizes = new Map<string, number>();
    const parents = new Set<string>();
    for (const other of ctx.index.graph.nodes) {
      const at = moduleScope(other);
      if (!at) continue;
      sizes.set(at, (sizes.get(at) ?? 0) + 1);
      for (let cut = at.lastIndexOf('/'); cut > 0; cut = at.lastIndexOf('/', cut - 1)) parents.add(at.slice(0, cut));
    }
    return { sizes, parents };
  });
  return scopes.sizes.get(scope) === 1 && !scopes.parents.has(scope);
}

/** `modified` where the node is a whole module and not among the functional ones (`plainValues`: their outputs), else `plain`. */
function onModules(modified: BackwardRule, plain: BackwardRule, plainValues: ReadonlySet<string>): BackwardRule {
  return (ctx, node, dy, wants, outputs) => (wholeModule(ctx, node) && !plainValues.has(node.outputs[0]) ? modified : plain)(ctx, node, dy, wants, outputs);
}

/**
 * The rules `rule` puts in place of the `plain` ones (gradient.ts's), by op;
 * a node that is no module, or writes one of `plainValues`, keeps its plain rule.
 */
export function modifiedRules(rule: GradientRule, plain: Readonly<Record<string, BackwardRule>>, plainValues: ReadonlySet<string> = new Set()): Readonly<Record<string, BackwardRule>> {
  const modified: Record<string, BackwardRule> = rule === 'guided'
    ? { Relu: guidedRelu }
    : rule === 'deeplift'
    ? { ...Object.fromEntries(Object.entries(plainGradients).map(([op, gradient]) => [op, deepLiftActivation(gradient)])), MaxPool: deepLiftMaxPool }
    : {};
  return Object.fromEntries(Object.entries(modified).map(([op, replacement]) => [op, onModules(replacement, plain[op], plainValues)]));
}
