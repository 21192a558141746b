import path from 'node:path';

/** A path as the user would like to read it in a message: relative to the working folder when it lies inside, else absolute. */
export function shownPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative === '' || relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}
