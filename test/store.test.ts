import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { EventLog } from '../src/core/store/events.ts';
import { FileLock } from '../src/core/store/lock.ts';
import { Store, type ArtifactMeta } from '../src/core/store/store.ts';
import { tempDir } from './helpers.ts';

const KEY = 'a'.repeat(64);
const meta = (key: string): ArtifactMeta => ({ key, stage: 'split', material: { stage: 'split', version: 1, plugin: null, params: {}, inputs: [] }, context: {}, started: '', finished: '', ms: 0, host: os.hostname(), pid: process.pid });

/** The pid of a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('store', () => {
  it('publishes a staged artifact whole, meta.json included, and lists it', async () => {
    const store = new Store(tempDir());
    const staging = await store.prepareStaging('split', KEY);
    writeFileSync(path.join(staging, 'split.json'), '{}');
    assert.equal(store.has('split', KEY), false);
    assert.equal(await store.publish('split', KEY, meta(KEY)), true);
    assert.deepEqual(readdirSync(store.dir('split', KEY)).sort(), ['meta.json', 'split.json']);
    assert.deepEqual([...store.listKeys('split')], [KEY]);
    assert.equal(existsSync(staging), false);
    assert.equal(store.readMeta('split', KEY)?.key, KEY);
  });

  it('leaves out temporary files a killed writer left in the staging folder', async () => {
    const store = new Store(tempDir());
    const staging = await store.prepareStaging('split', KEY);
    mkdirSync(path.join(staging, 'maps'));
    writeFileSync(path.join(staging, 'maps', 'a.npy'), 'done');
    writeFileSync(path.join(staging, 'maps', '.b.npy.12345.0badf00d.tmp'), 'half');
    await store.publish('split', KEY, meta(KEY));
    assert.deepEqual(readdirSync(path.join(store.dir('split', KEY), 'maps')), ['a.npy']);
  });

  it('keeps the first of two publications of the same key and discards the second', async () => {
    const store = new Store(tempDir());
    writeFileSync(path.join(await store.prepareStaging('split', KEY), 'x'), 'first');
    assert.equal(await store.publish('split', KEY, meta(KEY)), true);
    writeFileSync(path.join(await store.prepareStaging('split', KEY), 'x'), 'second');
    assert.equal(await store.publish('split', KEY, meta(KEY)), false);
    assert.equal(readFileSync(path.join(store.dir('split', KEY), 'x'), 'utf8'), 'first');
    assert.equal(existsSync(store.stagingDir('split', KEY)), false);
  });
});

describe('lock files', () => {
  it('record the owner pid and host, and exclude a second holder', () => {
    const file = path.join(tempDir(), 'k.lock');
    const lock = FileLock.tryAcquire(file)!;
    assert.ok(lock);
    const owner = JSON.parse(readFileSync(file, 'utf8'));
    assert.equal(owner.pid, process.pid);
    assert.equal(owner.host, os.hostname());
    assert.equal(FileLock.tryAcquire(file), null);
    lock.release();
    assert.equal(existsSync(file), false);
    FileLock.tryAcquire(file)!.release();
  });

  it('take over a lock whose owner process is gone', () => {
    const file = path.join(tempDir(), 'k.lock');
    writeFileSync(file, JSON.stringify({ pid: deadPid(), host: os.hostname(), started: '', token: 'old' }));
    assert.equal(FileLock.holder(file), null);
    const lock = FileLock.tryAcquire(file);
    assert.ok(lock, 'the stale lock should be recovered');
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).pid, process.pid);
    lock.release();
  });

  it('leave a live owner’s lock alone, also on another host until its heartbeat stops', () => {
    const dir = tempDir();
    const remote = path.join(dir, 'remote.lock');
    writeFileSync(remote, JSON.stringify({ pid: 1, host: 'some-other-host', started: '', token: 't' }));
    assert.equal(FileLock.tryAcquire(remote), null);
    assert.equal(FileLock.holder(remote)?.host, 'some-other-host');
  });
});

describe('event log', () => {
  it('repairs a line cut short by a kill and skips it when reading', () => {
    const dir = tempDir();
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'events.jsonl');
    appendFileSync(file, '{"time":"t","type":"start","key":"k","pid":1}\n{"time":"t","type":"pub');
    const log = new EventLog(file);
    log.append({ type: 'publish', key: 'k' });
    const events = log.read();
    assert.deepEqual(events.map((e) => e.type), ['start', 'publish']);
    assert.ok(readFileSync(file, 'utf8').endsWith('}\n'));
  });
});
