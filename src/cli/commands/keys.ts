/**
 * `advsieve keys create --id NAME --scopes screen,oracle,policy,attack,admin [--per-second N --burst N] [--json]`:
 * a new API key, printed once, and the entry to add to ADVSIEVE_API_KEYS_FILE (or ADVSIEVE_API_KEYS)
 * with its SHA-256. The key itself is kept nowhere: lose it and create another.
 */
import { Command, InvalidArgumentError } from 'commander';
import { ApiKeyConfigError, createApiKey, parseScopes, Scope, SCOPES } from '../../gateway/apiKeys';
import { intOption } from '../options';

function scopesOption(value: string): Scope[] {
  try {
    return parseScopes(
      value.split(',').map((s) => s.trim()),
      '--scopes',
    );
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

export function registerKeys(program: Command): void {
  const keys = program
    .command('keys')
    .description('API keys for the GraphQL service (docs/api.md, "Keys, scopes and limits")');
  keys
    .command('create')
    .description('print a new API key once, and the configuration entry (with its SHA-256) to add for it')
    .requiredOption('--id <name>', 'key id: letters, digits, hyphens (shown in logs and the audit log)')
    .requiredOption('--scopes <list>', `comma-separated scopes: ${SCOPES.join(', ')}`, scopesOption)
    .option('--per-second <n>', "the key's own rate limit: tokens (images, plus one per request) per second", intOption)
    .option('--burst <n>', "the key's own bucket size (with --per-second)", intOption)
    .option('--json', 'print {"key", "entry"} as one JSON object')
    .action((opts: { id: string; scopes: Scope[]; perSecond?: number; burst?: number; json?: boolean }) => {
      if ((opts.perSecond === undefined) !== (opts.burst === undefined))
        throw new ApiKeyConfigError('--per-second and --burst go together');
      const rateLimit =
        opts.perSecond !== undefined ? { perSecond: opts.perSecond, burst: opts.burst as number } : undefined;
      const { key, entry } = createApiKey(opts.id, opts.scopes, rateLimit);
      if (opts.json) {
        process.stdout.write(JSON.stringify({ key, entry }) + '\n');
        return;
      }
      process.stdout.write(
        `API key (shown this once; give it to the client and keep it secret):\n\n  ${key}\n\n` +
          'Add this entry to the JSON array of ADVSIEVE_API_KEYS_FILE (or ADVSIEVE_API_KEYS):\n\n' +
          `  ${JSON.stringify(entry)}\n\n` +
          `Clients send it as "Authorization: Bearer ${key.slice(0, 12)}…" or "x-api-key: …".\n`,
      );
    });
}
