import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Executor, type RunSummary } from '../src/core/exec/executor.ts';
import type { Lanes, TaskLane } from '../src/core/exec/lane.ts';
import type { ProgressSink } from '../src/core/exec/progress.ts';
import type { TaskOutcome } from '../src/core/exec/run-task.ts';
import { TaskError } from '../src/core/exec/worker-pool.ts';
import type { Plan, Task } from '../src/core/plan/planner.ts';
import type { Stage } from '../src/core/plan/stages.ts';
import { EventLog } from '../src/core/store/events.ts';
import type { Store } from '../src/core/store/store.ts';
import { tempDir } from './helpers.ts';

function task(key: string, stage: Stage, inputs: string[] = []): Task {
  return { key, stage, pool: 'cpu', inputs, refs: {}, label: `${stage} ${key}`, cell: {}, plugin: null, material: { stage, version: 1, plugin: null, params: {}, inputs }, cached: false } as unknown as Task;
}

/** A lane that runs nothing: it records each key it was asked to run and fails the keys in `failing` as user errors. */
class RecordingLane implements TaskLane {
  readonly concurrency = 2;
  readonly ran: string[] = [];
  constructor(private readonly failing: ReadonlySet<string>) {}
  async run(task: Task): Promise<TaskOutcome> {
    this.ran.push(task.key);
    await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.failing.has(task.key)) throw new TaskError(`${task.key} failed`, true);
    return { status: 'published', ms: 5 };
  }
  stop(): void {}
  abort(): void {}
  close(): void {}
}

const silent: ProgressSink = {
  begin() {}, taskQueued() {}, taskStarted() {}, taskWaiting() {}, taskProgress() {}, taskFinished() {},
  taskRetry() {}, taskFailed() {}, taskSkipped() {}, warn() {}, output() {}, end() {},
};

/** Runs the tasks to the end, or fails the test when the run has not ended after two seconds (it would wait forever). */
async function runTasks(tasks: Task[], failing: string[] = []): Promise<{ summary: RunSummary; ran: string[] }> {
  const lane = new RecordingLane(new Set(failing));
  const lanes: Lanes = { of: () => lane, all: () => [lane] };
  const plan: Plan = { name: 'executor-test', manifestFile: 'm.yaml', manifestDir: '.', plugins: [], tasks };
  const executor = new Executor({ plan, store: {} as Store, events: new EventLog(path.join(tempDir(), 'events.jsonl')), lanes, retries: 0, failFast: false, progress: silent });
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('the run never ended')), 2000)));
  try {
    return { summary: await Promise.race([executor.run(), hung]), ran: lane.ran };
  } finally {
    clearTimeout(timer);
  }
}

describe('executor', () => {
  it('runs a key planned twice once, and its dependants after it', async () => {
    const tasks = [task('a', 'train'), task('b', 'explain', ['a']), task('b', 'explain', ['a']), task('c', 'score', ['b'])];
    const { summary, ran } = await runTasks(tasks);
    assert.deepEqual(ran, ['a', 'b', 'c']);
    assert.equal(summary.ran, 3);
    assert.equal(summary.notRun, 0);
  });

  it('ends when a key planned twice has a failed input, skipping it once', async () => {
    const tasks = [task('a', 'train'), task('b', 'explain', ['a']), task('b', 'explain', ['a']), task('c', 'score', ['b']), task('d', 'train')];
    const { summary, ran } = await runTasks(tasks, ['a']);
    assert.deepEqual([...ran].sort(), ['a', 'd']);
    assert.equal(summary.failed, 1);
    assert.equal(summary.skipped, 2);
    assert.equal(summary.ran, 1);
    assert.equal(summary.notRun, 0);
  });
});
