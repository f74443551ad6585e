/**
 * Maps paths in the parsed runbook (as validation reports them) back to
 * file:line:column in the YAML source.
 */
import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node } from 'yaml';
import path from 'node:path';
import type { SourcePosition } from '../errors.js';

export type PathKey = string | number;

/** `steps[2].sql` */
export function formatPath(path: readonly PathKey[]): string {
  let out = '';
  for (const key of path) {
    out += typeof key === 'number' ? `[${key}]` : out === '' ? key : `.${key}`;
  }
  return out === '' ? '(top level)' : out;
}

/** The path of a node from the ancestors `yaml.visit` hands a visitor. */
export function pathFromAncestors(ancestors: readonly unknown[], node: unknown): PathKey[] {
  const chain = [...ancestors, node];
  const path: PathKey[] = [];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isPair(parent) && child === parent.value && isScalar(parent.key)) path.push(String(parent.key.value));
    if (isSeq(parent)) path.push(parent.items.indexOf(child));
  }
  return path;
}

export class SourceMap {
  constructor(
    private readonly doc: Document,
    private readonly lines: LineCounter,
    readonly file: string,
  ) {}

  /** The directory the runbook's relative paths are resolved against. */
  get dir(): string {
    return path.dirname(path.resolve(this.file));
  }

  private at(offset: number): SourcePosition {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, column: col };
  }

  /** Position of the value at `path`, or of the nearest ancestor that exists. */
  valueAt(path: readonly PathKey[]): SourcePosition {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = depth === 0 ? this.doc.contents : this.doc.getIn(path.slice(0, depth), true);
      const range = (node as Node | null | undefined)?.range;
      if (range) return this.at(range[0]);
    }
    return { file: this.file, line: 1, column: 1 };
  }

  /** Position of the key `key` inside the mapping at `path` (for unknown keys). */
  keyAt(path: readonly PathKey[], key: string): SourcePosition {
    const node = path.length === 0 ? this.doc.contents : this.doc.getIn(path, true);
    if (isMap(node)) {
      for (const pair of node.items) {
        if (isScalar(pair.key) && String(pair.key.value) === key && pair.key.range) return this.at(pair.key.range[0]);
      }
    }
    return this.valueAt(path);
  }

  offset(offset: number): SourcePosition {
    return this.at(offset);
  }
}
