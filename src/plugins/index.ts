/**
 * The one place built-in plugins are registered. Core never imports a plugin
 * by name: the CLI hands this module to the registry (and to every worker).
 * Adding a method or metric is one file under src/plugins plus one line here.
 */
import type { Plugin } from '../core/plugins/types.ts';

const builtins: Plugin[] = [];

export default builtins;
