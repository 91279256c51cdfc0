/** Markdown tables, written one way for every report (evaluation results, experiment reports). */

/** A table cell: pipes escaped, line breaks as spaces. */
export function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A Markdown table: the first column left-aligned, the others right-aligned (numbers); ends with a newline. */
export function renderMarkdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [`| ${header.map(markdownCell).join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const row of rows) lines.push(`| ${row.map(markdownCell).join(' | ')} |`);
  return lines.join('\n') + '\n';
}
