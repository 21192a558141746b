import Table from 'cli-table3';

/** A compact, borderless table for terminal output. */
export function textTable(head: string[], rows: (string | number)[][], alignRight = true): string {
  const table = new Table({
    head,
    chars: { top: '', 'top-mid': '', 'top-left': '', 'top-right': '', bottom: '', 'bottom-mid': '', 'bottom-left': '', 'bottom-right': '', left: '', 'left-mid': '', mid: '', 'mid-mid': '', right: '', 'right-mid': '', middle: '  ' },
    style: { head: [], border: [], 'padding-left': 0, 'padding-right': 0 },
    colAligns: head.map((_, i) => (i === 0 || !alignRight ? 'left' : 'right')),
  });
  for (const row of rows) table.push(row.map(String));
  return table.toString();
}

export function print(text = ''): void {
  process.stdout.write(`${text}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
