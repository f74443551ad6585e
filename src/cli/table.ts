/**
 * The one plain-text table renderer: columns padded to their widest cell, as
 * wide as a terminal shows them. A CJK character or an emoji takes two
 * columns and a combining accent none, so padding by `.length` (UTF-16 units)
 * would push every later column of such a row out of line.
 */
import stringWidth from 'string-width';

export type Align = 'left' | 'right';

export interface TableOptions {
  /** Put before every line; two spaces unless told. */
  readonly indent?: string;
  /** Per column; left unless told. */
  readonly align?: readonly Align[];
}

/** Terminal columns the text takes (ANSI colour codes take none). */
export function displayWidth(text: string): number {
  return stringWidth(text);
}

/** `text` padded with spaces to `width` terminal columns, on the right (left-aligned) or on the left. */
export function pad(text: string, width: number, align: Align = 'left'): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(text)));
  return align === 'right' ? fill + text : text + fill;
}

/** The table's lines: the head, then one line a row. */
export function tableLines(head: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): string[] {
  const indent = options.indent ?? '  ';
  const widths = head.map((h, i) => Math.max(displayWidth(h), ...rows.map((r) => displayWidth(r[i] ?? ''))));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => pad(cell, widths[i] ?? 0, options.align?.[i]))
      .join('  ')
      .trimEnd();
  return [head, ...rows].map((cells) => `${indent}${line(cells)}`);
}

/** A plain-text table, lines joined. */
export function table(head: readonly string[], rows: readonly (readonly string[])[], options: TableOptions = {}): string {
  return tableLines(head, rows, options).join('\n');
}
