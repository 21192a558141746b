import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';

/** The last lines of a job's log (read from its end: a long training log can be large). */
export function logTail(file: string, lines = 20): string[] {
  if (!existsSync(file)) return [];
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const text = buffer.toString('utf8').replace(/\r/g, '');
    // The log holds every attempt; only the last one's lines matter.
    const attempts = text.split(/^(?==== job )/m);
    return attempts.at(-1)!.split('\n').filter((l) => l.trim()).slice(-lines);
  } finally {
    closeSync(fd);
  }
}

/**
 * What the last `salgrid task run` in the log said when it failed: its
 * one-sentence user error, or the first line of an internal error.
 */
export function salgridFailure(lines: string[]): { message: string; userError: boolean } | undefined {
  let index = lines.length - 1;
  while (index >= 0 && !lines[index].startsWith('salgrid: ')) index--;
  if (index < 0) return undefined;
  const message = lines[index].slice('salgrid: '.length).trim();
  if (message.startsWith('internal error')) return { message: lines[index + 1]?.trim() || message, userError: false };
  return { message, userError: true };
}
