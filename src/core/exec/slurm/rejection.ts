import type { SlurmConfig, SlurmOption } from './config.ts';

/** Which option a message of sbatch's is about: the first pattern that matches and whose option the manifest sets. */
const BLAME: [RegExp, SlurmOption[]][] = [
  // Before partition: "Invalid account or account/partition combination specified" is about the account.
  [/account|association/i, ['account']],
  [/partition/i, ['partition']],
  [/qos/i, ['qos']],
  [/time limit|--time|time specification/i, ['time']],
  [/gres|gpu|generic resource/i, ['gpusPerTask']],
  [/memory|--mem\b/i, ['mem']],
  [/cpus|cpu count|--cpus-per-task/i, ['cpusPerTask']],
  // Too much of something for any node: whichever sizes were asked for.
  [/node configuration is not available|more processors than|exceeded|too many/i, ['mem', 'cpusPerTask', 'gpusPerTask']],
];

const FIX: Record<SlurmOption, string> = {
  partition: 'use a partition that `sinfo` lists',
  account: 'use an account of yours (`sacctmgr show associations user=$USER`)',
  qos: 'use a QOS your account may use (`sacctmgr show associations user=$USER format=account,qos`)',
  time: "write it as minutes, HH:MM:SS or D-HH:MM:SS, within the partition's limit (`sinfo -o '%P %l'`)",
  mem: "ask for no more than a node has (`sinfo -o '%P %m'`)",
  cpusPerTask: "ask for no more CPUs than a node has (`sinfo -o '%P %c'`)",
  gpusPerTask: "ask for GPUs only where nodes have them (`sinfo -o '%P %G'`), or set gpusPerTask: 0",
  extraArgs: 'fix or remove the extra argument sbatch refuses',
};

const isSet = (config: SlurmConfig, option: SlurmOption) => {
  const value = config[option];
  return Array.isArray(value) ? value.length > 0 : option === 'gpusPerTask' ? (value as number) > 0 : value !== undefined;
};

/** The options of execution.slurm a refusal is about (empty when nothing the manifest sets explains it). */
export function blamedOptions(stderr: string, config: SlurmConfig): SlurmOption[] {
  for (const [pattern, options] of BLAME) {
    const set = options.filter((o) => isSet(config, o));
    if (pattern.test(stderr) && set.length > 0) return set;
  }
  return isSet(config, 'extraArgs') ? ['extraArgs'] : [];
}

/** sbatch's own error lines, word for word (other lines, such as --test-only's, only when there are none). */
export function slurmMessage(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const errors = lines.filter((l) => /^sbatch: error:/.test(l));
  return (errors.length > 0 ? errors : lines).join('; ');
}

/**
 * One sentence for a refused submission: where in the manifest the option
 * is, its value, Slurm's words, and the fix.
 */
export function rejectionMessage(stderr: string, config: SlurmConfig, where: (option: SlurmOption) => string): string {
  const quoted = `"${slurmMessage(stderr) || 'no message'}"`;
  const blamed = blamedOptions(stderr, config);
  if (blamed.length === 0) return `Slurm refused the job: ${quoted}; check execution.slurm and the cluster's limits (\`sinfo\`, \`sacctmgr show associations user=$USER\`).`;
  const [first] = blamed;
  const shown = blamed.map((o) => `execution.slurm.${o}${o === 'extraArgs' ? ` ${JSON.stringify(config.extraArgs)}` : ` (${JSON.stringify(config[o])})`}`);
  return `${where(first)}: Slurm refused ${shown.join(' or ')}: ${quoted}; ${blamed.map((o) => FIX[o]).join(', or ')}.`;
}
