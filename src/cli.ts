import { Command, CommanderError } from 'commander';
import { isUserError } from './core/errors.ts';
import { registerCancel } from './cli/cancel.ts';
import { registerExplain } from './cli/explain.ts';
import { registerGc, registerStatus } from './cli/inspect.ts';
import { registerInfo } from './cli/info.ts';
import { registerPlan } from './cli/plan.ts';
import { registerPredict } from './cli/predict.ts';
import { registerReport } from './cli/report.ts';
import { registerResults } from './cli/results.ts';
import { registerScore } from './cli/score.ts';
import { EXIT, registerRun } from './cli/run.ts';
import { registerSynth } from './cli/synth.ts';
import { registerTask } from './cli/task.ts';
import { registerTrain } from './cli/train.ts';
import { registerWeights } from './cli/weights.ts';

// A closed pipe (`salgrid plan --json | head`) is the reader's choice, not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});

const program = new Command('salgrid')
  .description('Declarative saliency sweeps: architectures × explainers × metrics × folds, cached and resumable.')
  .version('0.1.0')
  .option('--runs <dir>', 'where the cache and sweep folders live (default: ./runs, or $SALGRID_RUNS)')
  .showHelpAfterError()
  .exitOverride();

registerInfo(program);
registerPlan(program);
registerRun(program);
registerResults(program);
registerReport(program);
registerStatus(program);
registerCancel(program);
registerGc(program);
registerTask(program);
registerSynth(program);
registerWeights(program);
registerPredict(program);
registerScore(program);
registerExplain(program);
registerTrain(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.userError;
  } else if (isUserError(error)) {
    process.stderr.write(`salgrid: ${error.message}\n`);
    for (const line of error.details) process.stderr.write(`  ${line}\n`);
    process.exitCode = EXIT.userError;
  } else {
    process.stderr.write(`salgrid: internal error (please report it):\n${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = EXIT.userError;
  }
}
