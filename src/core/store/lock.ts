import { randomBytes } from 'node:crypto';
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeSync, mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface LockOwner {
  pid: number;
  host: string;
  started: string;
  token: string;
}

/** Locks on another host count as stale when their heartbeat stops for this long. */
const REMOTE_STALE_MS = 120_000;
/** A lock file still empty after this long was left by a process killed while creating it. */
const EMPTY_STALE_MS = 10_000;
const HEARTBEAT_MS = 30_000;

export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(file: string): LockOwner | null {
  try {
    const text = readFileSync(file, 'utf8');
    return text ? (JSON.parse(text) as LockOwner) : null;
  } catch {
    return null;
  }
}

/**
 * A lock file holding its owner's pid and host. Stale locks — whose owner
 * process is gone, or whose remote owner stopped its heartbeat — are taken
 * over safely: the stale file is renamed aside and checked before removal,
 * so two processes recovering the same lock cannot both win.
 */
export class FileLock {
  private heartbeat?: NodeJS.Timeout;
  private constructor(
    readonly file: string,
    readonly owner: LockOwner,
  ) {}

  static tryAcquire(file: string): FileLock | null {
    mkdirSync(path.dirname(file), { recursive: true });
    for (let attempt = 0; attempt < 2; attempt++) {
      const owner: LockOwner = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), token: randomBytes(8).toString('hex') };
      try {
        const fd = openSync(file, 'wx');
        try {
          writeSync(fd, JSON.stringify(owner));
        } finally {
          closeSync(fd);
        }
        const lock = new FileLock(file, owner);
        lock.startHeartbeat();
        return lock;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      if (!FileLock.removeIfStale(file)) return null;
    }
    return null;
  }

  /** The current owner, when the lock is held by a live process. */
  static holder(file: string): LockOwner | null {
    const owner = readOwner(file);
    return owner && !FileLock.isStale(file, owner) ? owner : null;
  }

  private static isStale(file: string, owner: LockOwner | null): boolean {
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      return false;
    }
    if (!owner) return Date.now() - mtime > EMPTY_STALE_MS;
    if (owner.host === os.hostname()) return !isProcessAlive(owner.pid);
    return Date.now() - mtime > REMOTE_STALE_MS;
  }

  /** Removes the lock file if its owner is gone; true when it was removed (by us or someone else). */
  static removeIfStale(file: string): boolean {
    const owner = readOwner(file);
    if (!FileLock.isStale(file, owner)) return false;
    const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString('hex')}`;
    try {
      renameSync(file, aside);
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT';
    }
    const moved = readOwner(aside);
    if ((moved?.token ?? null) === (owner?.token ?? null)) {
      unlinkSync(aside);
      return true;
    }
    // Someone took the lock over between our read and our rename: put theirs back.
    try {
      linkSync(aside, file);
    } catch {
      // A third process already holds a new lock; theirs stands.
    }
    unlinkSync(aside);
    return false;
  }

  private startHeartbeat(): void {
    this.heartbeat = setInterval(() => {
      try {
        const now = new Date();
        utimesSync(this.file, now, now);
      } catch {
        // The lock file vanished (removed by hand): nothing to refresh.
      }
    }, HEARTBEAT_MS);
    this.heartbeat.unref();
  }

  release(): void {
    clearInterval(this.heartbeat);
    if (readOwner(this.file)?.token === this.owner.token) {
      try {
        unlinkSync(this.file);
      } catch {
        // Already gone.
      }
    }
  }
}
