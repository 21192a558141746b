/**
 * The architecture flags shared by `salgrid weights import`, `predict` and
 * `explain`: `--arch <id>` looked up in the registry (with its closest-id
 * suggestion), and repeatable `--arch-param key=value` with YAML values
 * (`widthMult=0.5`, `layers=[1,2,1,1]`, `block=basic`), checked against the
 * plugin's params schema so a mistake names the param. The pair parsing and
 * the schema check serve any plugin's params (`explain --param`).
 */
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { UserError, errorMessage } from '../core/errors.ts';
import { createAjv, problemsFromAjv } from '../core/manifest/ajv.ts';
import type { ArchitecturePlugin, Params, PluginInfo } from '../core/plugins/types.ts';
import type { Registry } from '../core/plugins/registry.ts';
import type { TfjsArchitecture } from '../core/tensor/tfjs-architecture.ts';
import { BUILTINS } from './context.ts';

export interface ArchOptions {
  arch?: string;
  archParam?: string[];
  plugin?: string[];
}

const collect = (value: string, previous: string[] | undefined) => [...(previous ?? []), value];

/** Adds `--arch-param` (repeatable) and `--plugin` (repeatable); `--arch` is the caller's (an argument or an option). */
export function addArchParamOptions(command: Command): Command {
  return command
    .option('--arch-param <key=value>', 'an architecture param, value in YAML (e.g. widthMult=0.5, layers=[1,2,1,1]); repeatable', collect)
    .option('--plugin <module>', 'also load this plugin module, for its architectures (and explainers); repeatable', collect);
}

/** The key=value pairs of a repeatable `flag` (`--arch-param`, `--param`) as params, values parsed as YAML; not yet checked against a schema. */
export function parseParamPairs(pairs: readonly string[], flag = '--arch-param', example = 'widthMult=0.5 or layers=[1,2,1,1]'): Params {
  const params: Params = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const key = at < 0 ? '' : pair.slice(0, at).trim();
    if (at < 0 || key === '') throw new UserError(`${flag} takes key=value, such as ${example}; got "${pair}".`);
    const text = pair.slice(at + 1).trim();
    if (text === '') throw new UserError(`${flag} ${key} has no value; write ${key}=<value>.`);
    if (Object.hasOwn(params, key)) throw new UserError(`${flag} ${key} is given twice; give it once.`);
    params[key] = parseParamValue(text, `${flag} ${key}`);
  }
  return params;
}

/** One flag value as YAML (`0.5` → 0.5, `[1,2]` → a list, `CG` → "CG"); `what` names it in the error. */
export function parseParamValue(text: string, what: string): Params[string] {
  try {
    return parseYaml(text) as Params[string];
  } catch (error) {
    const reason = errorMessage(error).split('\n')[0].replace(/:\s*$/, '');
    throw new UserError(`${what}: "${text}" is not a YAML value (${reason}); write a number, a word or a list such as [1,2,1,1].`);
  }
}

/** The key=value pairs as architecture params, values parsed as YAML; not yet checked against a schema. */
export function parseArchParamPairs(pairs: readonly string[]): Params {
  return parseParamPairs(pairs);
}

/** `/blockConfig/0` → `blockConfig[0]`: how the user would name it. */
function paramName(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((segment, i) => (/^\d+$/.test(segment) ? `[${segment}]` : `${i > 0 ? '.' : ''}${segment.replace(/~1/g, '/').replace(/~0/g, '~')}`))
    .join('');
}

/**
 * `params` checked against a plugin's params schema, which fills in its
 * defaults (in place; also returned). The first problem is a UserError
 * naming the param: `flagOf(name)` says which flag gave it (default `--arch-param`).
 */
export function checkParams(plugin: PluginInfo, params: Params, flagOf: (name: string) => string = () => '--arch-param'): Params {
  const validate = createAjv().compile(plugin.params);
  if (!validate(params)) {
    const [problem] = problemsFromAjv(validate.errors);
    const name = paramName(problem.pointer);
    const flag = flagOf(name.split(/[.[]/)[0]);
    const unknown = /^unknown field "[^"]*"/.exec(problem.message);
    if (unknown) {
      throw new UserError(`${flag} ${name}: ${plugin.id} has no param "${name}"${problem.message.slice(unknown[0].length)}.`);
    }
    throw new UserError(`${flag} ${name || '(params)'} of ${plugin.id} ${problem.message}.`);
  }
  return params;
}

/** The params given by `--arch-param`, checked against the architecture's schema (which fills in its defaults). */
export function archParams(plugin: ArchitecturePlugin, pairs: readonly string[]): Params {
  return checkParams(plugin, parseArchParamPairs(pairs));
}

/** The registry with the built-in plugins and any `--plugin` modules (paths relative to the working folder). */
export async function cliRegistry(plugins: readonly string[] = []): Promise<Registry> {
  const { createRegistry } = await import('../core/sweep.ts');
  return createRegistry(BUILTINS, [...plugins], process.cwd());
}

/** The architecture `id`, which must be a tfjs layers architecture (one that loads PyTorch weights and tfjs models); `flag` prefixes errors. */
export async function tfjsArchitecture(registry: Registry, id: string, flag = '--arch'): Promise<TfjsArchitecture> {
  const { isTfjsArchitecture } = await import('../core/tensor/tfjs-architecture.ts');
  const prefix = flag ? `${flag}: ` : '';
  if (!registry.has('architecture', id)) throw new UserError(`${prefix}${registry.unknownMessage('architecture', id)}.`);
  const plugin = registry.get('architecture', id);
  if (!isTfjsArchitecture(plugin)) {
    throw new UserError(`${prefix}architecture "${id}" is not a TensorFlow.js layers architecture, so it cannot load PyTorch weights or tfjs models; use one of ${registry.all('architecture').filter((p) => isTfjsArchitecture(p as ArchitecturePlugin)).map((p) => p.id).join(', ')}.`);
  }
  return plugin;
}

/** `--arch` and `--arch-param` resolved: the architecture and its checked params. */
export async function architectureFromOptions(id: string, options: ArchOptions, flag = '--arch'): Promise<{ plugin: TfjsArchitecture; params: Params }> {
  const registry = await cliRegistry(options.plugin ?? []);
  const plugin = await tfjsArchitecture(registry, id, flag);
  return { plugin, params: archParams(plugin, options.archParam ?? []) };
}
