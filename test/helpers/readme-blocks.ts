/** The fenced code blocks of a Markdown text: language (first word of the info string), the rest of it, the code. */
export interface CodeBlock {
  lang: string; // 'bash', 'ts', ... ('' when none)
  tags: string[]; // the info string's other words: ```bash install -> ['install']
  code: string;
  line: number; // 1-based line of the opening fence
}

export function readmeBlocks(markdown: string): CodeBlock[] {
  const blocks: CodeBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    if (i >= lines.length) throw new Error(`line ${start + 1}: code block not closed`);
    blocks.push({ lang: open[1]!, tags: open[2]!.split(/\s+/).filter(Boolean), code: body.join('\n') + '\n', line: start + 1 });
  }
  return blocks;
}
