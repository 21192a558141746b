import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { writeFileAtomic } from './atomic.ts';
import type { FileRecord } from '../plugins/types.ts';

interface MemoEntry {
  size: number;
  mtimeMs: number;
  ino: number;
  sha256: string;
}

async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * SHA-256 of data files, remembered by (size, mtime, inode) in a memo file so
 * that planning a sweep over thousands of images does not re-read them all;
 * a file whose stat changed is hashed again.
 */
export async function hashFiles(files: string[], memoFile: string): Promise<FileRecord[]> {
  let memo: Record<string, MemoEntry> = {};
  try {
    memo = JSON.parse(readFileSync(memoFile, 'utf8')) as Record<string, MemoEntry>;
  } catch {
    // No memo yet, or a damaged one: hash everything.
  }
  let changed = false;
  const records: FileRecord[] = [];
  for (const file of files) {
    const stat = statSync(file);
    const known = memo[file];
    let sha256: string;
    if (known && known.size === stat.size && known.mtimeMs === stat.mtimeMs && known.ino === stat.ino) {
      sha256 = known.sha256;
    } else {
      sha256 = await hashFile(file);
      memo[file] = { size: stat.size, mtimeMs: stat.mtimeMs, ino: stat.ino, sha256 };
      changed = true;
    }
    records.push({ path: file, sha256, size: stat.size });
  }
  if (changed) {
    try {
      await writeFileAtomic(memoFile, JSON.stringify(memo));
    } catch {
      // The memo only saves time; a read-only cache still plans correctly.
    }
  }
  return records;
}
