/**
 * Command-line front end: parses argv and runs one command. Returns the exit code
 * (0 ok, 1 runtime failure, 2 bad usage or bad config). The commands are in cli/commands.ts,
 * their help in cli/help.ts.
 */
import { ConfigError } from './config-runtime.js';
import { COMMANDS, type CliIo } from './cli/commands.js';
import { COMMAND_HELP, USAGE } from './cli/help.js';
import { VERSION } from './version.js';

export { makeLogger, type CliIo } from './cli/commands.js';

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const [command, ...rest] = argv;
  // No command is a usage error: the usage goes to stderr, so a script that forgot one sees it fail.
  if (!command) return io.stderr(USAGE), 2;
  if (command === 'help' || command === '--help' || command === '-h') {
    const topic = rest[0];
    if (!topic || topic === 'help') return io.stdout(USAGE), 0;
    if (topic === 'bench') return COMMANDS.bench!(['--help'], io);
    const text = COMMAND_HELP[topic];
    if (!text) {
      io.stderr(`vllm-probe help: unknown command "${topic}" (known: ${Object.keys(COMMANDS).join(', ')})\n`);
      return 2;
    }
    io.stdout(text);
    return 0;
  }
  if (command === '--version' || command === 'version') {
    io.stdout(`${VERSION}\n`);
    return 0;
  }
  const handler = COMMANDS[command];
  if (!handler) {
    io.stderr(`vllm-probe: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }
  try {
    return await handler(rest, io);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.stderr(`${err.message}\n`);
      return 2;
    }
    if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`vllm-probe ${command}: ${(err as Error).message}\n\n${COMMAND_HELP[command] ?? USAGE}`);
      return 2;
    }
    if ((err as { code?: string }).code === 'EADDRINUSE') {
      io.stderr(`vllm-probe ${command}: cannot listen: address already in use (${(err as { address?: string }).address ?? ''}:${(err as { port?: number }).port ?? ''})\n`);
      return 1;
    }
    // Anything else (a bad --out path, an unreadable file…): one line, no stack trace (issue 18).
    io.stderr(`vllm-probe ${command}: ${oneLineError(err)}\n`);
    return 2;
  }
}

/** "ENOTDIR: not a directory, mkdir '/dev/null/x'" → "/dev/null/x: not a directory". */
function oneLineError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string' && typeof e.path === 'string') {
    const what = e.message.replace(/^[A-Z]+: /, '').replace(/, \w+ '.*'$/, '');
    return `${e.path}: ${what}`;
  }
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

