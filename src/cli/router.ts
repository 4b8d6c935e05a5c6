/** `switchyard router`: one router actor in this process. */
import { DEFAULT_SERVERS, redactUrl } from '../cluster/connection.ts';
import { GENERATE_SUBJECT } from '../cluster/subjects.ts';
import { newActorId } from '../config/checks.ts';
import { resolveRouterConfig } from '../config/actors.ts';
import { LOG_LEVEL_ENV } from '../config/common-options.ts';
import { subcommandHelp } from '../config/help.ts';
import { ROUTER_TABLE } from '../config/router-table.ts';
import { runActor } from './actor.ts';

/** Runs a router until it is signalled; resolves to the exit status. */
export async function routerCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveRouterConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(ROUTER_TABLE));
    return 0;
  }
  const { logLevel, ...options } = resolved.settings;
  const id = options.id ?? newActorId('router');
  // The router's logger reads the level from the environment (RouterOptions has no log level).
  process.env[LOG_LEVEL_ENV] = logLevel;
  const servers = options.nats.servers ?? DEFAULT_SERVERS;
  const at = (typeof servers === 'string' ? [servers] : servers).map(redactUrl).join(', ');
  return runActor({
    role: 'router',
    id,
    start: async (progress) => {
      progress(`router ${id}: connecting to NATS at ${at}…`);
      const { startRouter } = await import('../router/router.ts');
      const router = await startRouter({ ...options, id });
      progress(
        `router ${id}: ready (front door ${GENERATE_SUBJECT}, strategy ${options.strategy ?? 'default'})`,
      );
      return router;
    },
    describe: () => Promise.resolve(options.strategy),
  });
}
