import type { Plan } from './planner.ts';
import { shortKey } from './keys.ts';

const quote = (text: string) => `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

/** The task DAG in Graphviz dot: cached tasks grey, tasks to run filled. */
export function planToDot(plan: Plan): string {
  const lines = [`digraph ${quote(plan.name)} {`, '  rankdir=LR;', '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];'];
  for (const task of plan.tasks) {
    const color = task.cached ? '#e0e0e0' : '#ffd58a';
    lines.push(`  ${quote(task.key)} [label=${quote(`${task.label}\\n${shortKey(task.key)}`)}, fillcolor=${quote(color)}];`);
  }
  for (const task of plan.tasks) for (const input of task.inputs) lines.push(`  ${quote(input)} -> ${quote(task.key)};`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
