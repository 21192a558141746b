// @ts-check
/**
 * Commands that run networks in the CLI's own process (`train`, `explain`,
 * `predict`, `score`, `task run`) need the allocator settings of a tensor
 * worker (src/core/exec/tensor-env.js): glibc reads them only when a process
 * starts, and without them every output ONNX Runtime hands back is served by
 * fresh pages (measured: 0.2–0.6 s a step of ResNet101 at batch 8, whose
 * weights and momentum come back each step). Such a command therefore runs
 * in a child process started with them; this process only waits for it,
 * passes on the signals it receives and ends as the child did.
 *
 * Plain JavaScript (type-checked through JSDoc): bin/salgrid.js runs it
 * before it loads the TypeScript loader, so the waiting process costs one
 * bare Node start.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { hasTensorEnv, tensorWorkerEnv } from '../core/exec/tensor-env.js';

const TENSOR_COMMANDS = new Set(['train', 'explain', 'predict', 'score']);
/** @type {NodeJS.Signals[]} The signals a person, a scheduler or a supervisor stops a command with. */
const PASSED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** Set in the child: the pid of the process that waits for it. */
const PARENT_VARIABLE = 'SALGRID_TENSOR_PARENT';

/**
 * The command words of `salgrid [--runs <dir>] <command> [<sub>] …`: at most the first two words after the global options.
 * @param {string[]} args
 * @returns {string[]}
 */
function commandWords(args) {
  /** @type {string[]} */
  const words = [];
  for (let i = 0; i < args.length && words.length < 2; i++) {
    const arg = args[i];
    if (words.length === 0 && arg === '--runs') i++;
    else if (!arg.startsWith('-')) words.push(arg);
    else if (words.length > 0) break;
  }
  return words;
}

/**
 * Whether `salgrid <args>` runs tensor work in its own process.
 * @param {string[]} args the arguments after the script
 */
export function runsTensorWork(args) {
  const [command, sub] = commandWords(args);
  return TENSOR_COMMANDS.has(command) || (command === 'task' && sub === 'run');
}

/** In a child started by relaunchForTensors: stop when the waiting process is gone (killed with SIGKILL), as at a SIGTERM from it. */
function followParent() {
  if (!process.env[PARENT_VARIABLE] || !process.channel) return;
  delete process.env[PARENT_VARIABLE];
  process.channel.unref();
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}

/**
 * Runs this command in a child process with the tensor allocator settings
 * when it needs them and lacks them (on Linux, where glibc reads them); true when it did (the child has ended
 * and this process has taken its exit code; a child killed by a signal is
 * answered by the same signal here, so shells and supervisors see it).
 * @param {string[]} argv process.argv
 * @returns {Promise<boolean>}
 */
export async function relaunchForTensors(argv) {
  followParent();
  // The settings are glibc's: elsewhere (macOS, Windows) a child would change nothing.
  if (process.platform !== 'linux' || hasTensorEnv(process.env) || !runsTensorWork(argv.slice(2))) return false;
  const child = spawn(process.execPath, [...process.execArgv, ...argv.slice(1)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...tensorWorkerEnv(process.env), [PARENT_VARIABLE]: String(process.pid) },
  });
  // A signal from a terminal reaches both processes; one sent to this pid alone reaches only this one. Passing each on
  // covers both: the commands stop at the first of these signals, and `task run` takes a repeated SIGTERM as one.
  /** @param {NodeJS.Signals} signal */
  const pass = (signal) => child.kill(signal);
  for (const signal of PASSED_SIGNALS) process.on(signal, pass);
  /** @type {{ code: number | null; signal: NodeJS.Signals | null }} */
  const ended = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  for (const signal of PASSED_SIGNALS) process.off(signal, pass);
  if (ended.signal) process.kill(process.pid, ended.signal);
  process.exitCode = ended.code ?? 128 + (ended.signal ? constants.signals[ended.signal] : 0);
  return true;
}
