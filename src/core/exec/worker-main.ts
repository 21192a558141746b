/**
 * Entry point of a long-lived worker process: loads the plugins once, then
 * runs the tasks its parent sends, one at a time. It leaves Ctrl-C to the
 * parent (which decides whether running tasks finish) and exits as soon as
 * the parent is gone.
 */
import { UserError, errorMessage, isUserError } from '../errors.ts';
import { Registry, loadPluginModules } from '../plugins/registry.ts';
import { EventLog } from '../store/events.ts';
import { Store } from '../store/store.ts';
import type { BackendInfo } from '../tensor/backend.ts';
import { backendRecord } from '../tensor/backend-names.ts';
import type { FromWorker, ToWorker, WorkerSetup } from './protocol.ts';
import { executeTask } from './run-task.ts';

let setup: WorkerSetup | undefined;
let registry: Registry | undefined;
let abort = new AbortController();
let backend: BackendInfo | undefined;

const send = (message: FromWorker) => process.send?.(message);

process.on('SIGINT', () => {});
process.on('disconnect', () => process.exit(0));

process.on('message', (message: ToWorker) => {
  if (message.type === 'init') void init(message.setup);
  else if (message.type === 'task') void run(message.task, message.attempt);
  else if (message.type === 'abort') abort.abort(new UserError('stopped by the user'));
});

async function init(given: WorkerSetup): Promise<void> {
  setup = given;
  try {
    registry = new Registry();
    await loadPluginModules(registry, given.pluginModules, given.manifestDir);
    if (given.backend) {
      const { initBackend } = await import('../tensor/backend.ts');
      backend = await initBackend(given.backend.name, { allowSoftwareAdapter: given.backend.allowSoftwareAdapter, threads: given.backend.threads });
    }
    send({ type: 'ready' });
  } catch (error) {
    send({ type: 'init-failed', message: errorMessage(error), userError: isUserError(error) });
  }
}

async function run(task: Parameters<typeof executeTask>[0], attempt: number): Promise<void> {
  abort = new AbortController();
  try {
    const outcome = await executeTask(task, {
      registry: registry!,
      store: new Store(setup!.cacheRoot),
      events: new EventLog(setup!.eventsFile),
      manifestDir: setup!.manifestDir,
      runPid: setup!.runPid,
      attempt,
      signal: abort.signal,
      backend: backend && backendRecord(backend),
      progress: (done, total, note) => send({ type: 'progress', key: task.key, done, total, note }),
      warn: (text) => send({ type: 'warn', key: task.key, message: text }),
    });
    send({ type: 'done', key: task.key, outcome });
  } catch (error) {
    send({ type: 'error', key: task.key, message: errorMessage(error), userError: isUserError(error), stack: error instanceof Error ? error.stack : undefined });
  }
}
