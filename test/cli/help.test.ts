/**
 * The CLI's help and usage errors: `-h` lists the commands; a command's help shows its own options, then the shared
 * ones it takes, then examples; no option a command does not take; words never cut at the wrap width; a word given
 * to a number flag is "not a number".
 */
import { buildCli } from '../../lib/cli/index.js';
import { runCli } from '../helpers/cli.js';

const COMMANDS = ['inspect', 'generate', 'prune', 'convert', 'eval', 'run', 'report', 'demo', 'finetune'];

async function help(command?: string, width: number | null = 100): Promise<string> {
  return buildCli(command ? [command] : [], {}, width).getHelp();
}

/** The section of a help text under `title` (up to the next blank line). */
function section(text: string, title: string): string {
  const at = text.indexOf(`\n${title}\n`);
  return at < 0 ? '' : text.slice(at + title.length + 2).split('\n\n')[0]!;
}

const flags = (block: string): string[] => [...block.matchAll(/^ +(?:-\w, )?--([\w-]+)/gm)].map((m) => m[1]!);

test('llm-prune -h and --help list every command (exit 0); no command is an error naming them', async () => {
  const [short, long, none] = await Promise.all([runCli(['-h']), runCli(['--help']), runCli([])]);
  expect({ code: short.code, stderr: short.stderr }).toEqual({ code: 0, stderr: '' });
  expect(long.stdout).toBe(short.stdout);
  for (const c of COMMANDS) expect(short.stdout).toMatch(new RegExp(`^ +llm-prune ${c}\\b`, 'm'));
  expect({ code: none.code, stderr: none.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/^error: give a command: inspect, generate/) });
});

test.each(COMMANDS)('llm-prune %s --help: own options, then the shared ones, then examples', async (command) => {
  const text = await help(command);
  const titles = [...text.matchAll(/^(\w[\w ]*):$/gm)].map((m) => m[1]);
  expect(titles.filter((t) => t !== 'Positionals')).toEqual(['Options', 'Global options', 'Examples']);
  const own = flags(section(text, 'Options:'));
  const shared = flags(section(text, 'Global options:'));
  expect(own.length).toBeGreaterThan(0);
  expect(own.filter((f) => ['backend', 'threads', 'hf-token', 'help', 'version'].includes(f))).toEqual([]);
  expect(shared.slice(-2)).toEqual(['help', 'version']);
  expect(section(text, 'Examples:')).toMatch(new RegExp(`^  llm-prune ${command}\\b`, 'm'));
});

test('report lists no backend or hub option, and its folders are required without a default', async () => {
  const text = await help('report');
  expect(flags(section(text, 'Global options:'))).toEqual(['help', 'version']);
  expect(section(text, 'Positionals:')).toMatch(/^ +dirs .*\[required\]$/m);
  expect(text).not.toContain('[default: []]');
});

test('convert takes --hf-token but no backend option (it runs no model)', async () => {
  expect(flags(section(await help('convert'), 'Global options:'))).toEqual(['hf-token', 'help', 'version']);
});

test.each([80, 100, 120])('no word is cut at the wrap width (%i columns)', async (width) => {
  // yargs sometimes sets a right-aligned [type] against the last word of a full line: that is no cut
  const words = (t: string): Set<string> => new Set(t.replace(/\[/g, ' [').split(/\s+/).filter(Boolean));
  for (const command of [undefined, ...COMMANDS]) {
    const text = await help(command, width);
    const wide = words(await help(command, null)); // not wrapped
    const cut = [...words(text)].filter((w) => !wide.has(w));
    expect({ command, cut }).toEqual({ command, cut: [] });
  }
});

test('a word given to a number flag is "not a number", named by its flag', async () => {
  const r = await runCli(['prune', '--model', 'm', '--method', 'wanda', '--out', 'o', '--sparsity', 'half']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: "error: --sparsity: 'half' is not a number\n(llm-prune prune --help lists the options)\n" });
  const eq = await runCli(['eval', '--model', 'm', '--ppl', 'wikitext2', '--limit=ten']);
  expect(eq.stderr).toMatch(/^error: --limit: 'ten' is not a number$/m);
});
