import { readFileSync } from 'node:fs';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode, type Pair } from 'yaml';
import { UserError } from '../errors.ts';

export interface Position {
  line: number;
  col: number;
}

/** A manifest file parsed with source positions, so errors can say file:line:col. */
export class ManifestSource {
  private constructor(
    readonly file: string,
    readonly text: string,
    readonly document: Document,
    private readonly lines: LineCounter,
  ) {}

  static read(file: string): ManifestSource {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new UserError(code === 'ENOENT' ? `manifest ${file} not found; check the path.` : `cannot read manifest ${file} (${code}).`);
    }
    return ManifestSource.parse(file, text);
  }

  static parse(file: string, text: string): ManifestSource {
    const lines = new LineCounter();
    const document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    const source = new ManifestSource(file, text, document, lines);
    if (document.errors.length > 0) {
      // Later syntax errors mostly follow from the first: show a few.
      const shown = document.errors.slice(0, 3).map((error) => {
        const { line, col } = lines.linePos(error.pos[0]);
        return `${file}:${line}:${col}: YAML syntax: ${error.message.split('\n')[0]}`;
      });
      const more = document.errors.length - shown.length;
      if (more > 0) shown.push(`… and ${more} more YAML error${more > 1 ? 's' : ''} after these`);
      throw new UserError(`YAML syntax error in ${file}; fix the first one shown (quote values with [ ] { } : or #).`, shown);
    }
    return source;
  }

  data(): unknown {
    return this.document.toJS({ maxAliasCount: 1000 }) ?? {};
  }

  /**
   * The position of the node at a JSON pointer; `key` points at the map key
   * (used for unknown properties). Falls back to the deepest node that exists.
   */
  locate(pointer: string, at: 'key' | 'value' = 'value'): Position {
    const segments = pointer === '' ? [] : pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    let node: unknown = this.document.contents;
    let offset = (node as YamlNode | null)?.range?.[0] ?? 0;
    for (let i = 0; i < segments.length; i++) {
      const segment = segments[i];
      const last = i === segments.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((item: Pair) => (isScalar(item.key) ? String(item.key.value) : String(item.key)) === segment);
        if (!pair) break;
        const keyNode = pair.key as YamlNode | null;
        if (last && at === 'key' && keyNode?.range) {
          offset = keyNode.range[0];
          break;
        }
        node = pair.value;
        offset = (pair.value as YamlNode | null)?.range?.[0] ?? keyNode?.range?.[0] ?? offset;
      } else if (isSeq(node)) {
        const item = node.items[Number(segment)] as YamlNode | undefined;
        if (!item) break;
        node = item;
        offset = item.range?.[0] ?? offset;
      } else {
        break;
      }
    }
    return this.lines.linePos(offset);
  }

  where(pointer: string, at: 'key' | 'value' = 'value'): string {
    const { line, col } = this.locate(pointer, at);
    return `${this.file}:${line}:${col}`;
  }
}

/** A problem in a manifest, reported with its position. */
export interface ManifestProblem {
  pointer: string;
  message: string;
  at?: 'key' | 'value';
}

export function manifestError(source: ManifestSource, problems: ManifestProblem[]): UserError {
  const sorted = problems
    .map((p) => ({ ...p, pos: source.locate(p.pointer, p.at) }))
    .sort((a, b) => a.pos.line - b.pos.line || a.pos.col - b.pos.col);
  const details = sorted.map((p) => `${source.file}:${p.pos.line}:${p.pos.col}: ${p.pointer || '/'}: ${p.message}`);
  const count = details.length;
  return new UserError(`${count} problem${count > 1 ? 's' : ''} in manifest ${source.file}; fix ${count > 1 ? 'them' : 'it'} and run again.`, details);
}
