/** `switchyard collector`: one collector actor in this process. */
import { DEFAULT_SERVERS, redactUrl } from '../cluster/connection.ts';
import { newActorId } from '../config/checks.ts';
import { resolveCollectorConfig } from '../config/actors.ts';
import { LOG_LEVEL_ENV } from '../config/common-options.ts';
import { subcommandHelp } from '../config/help.ts';
import { COLLECTOR_TABLE } from '../config/collector-table.ts';
import { runActor } from './actor.ts';

/** Runs a collector until it is signalled; resolves to the exit status. */
export async function collectorCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveCollectorConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(COLLECTOR_TABLE));
    return 0;
  }
  const { logLevel, ...options } = resolved.settings;
  const id = options.id ?? newActorId('collector');
  process.env[LOG_LEVEL_ENV] = logLevel;
  const servers = options.nats.servers ?? DEFAULT_SERVERS;
  const at = (typeof servers === 'string' ? [servers] : servers).map(redactUrl).join(', ');
  return runActor({
    role: 'collector',
    id,
    start: async (progress) => {
      progress(`collector ${id}: connecting to NATS at ${at}…`);
      const { startCollector } = await import('../collector/collector.ts');
      const collector = await startCollector({ ...options, id });
      progress(`collector ${id}: ready (${collector.records.size} records)`);
      return collector;
    },
    describe: () => Promise.resolve('collector'),
  });
}
