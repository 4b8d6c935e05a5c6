/** `switchyard bridge`: the HTTP bridge (OpenAI-compatible API and web page) in this process. */
import { createAuthenticator } from '../bridge/auth.ts';
import { startBridge } from '../bridge/bridge.ts';
import { responseCacheSource } from '../bridge/cache.ts';
import type { Authenticator } from '../bridge/policy.ts';
import { rateLimiterSource } from '../bridge/rate-limit.ts';
import { DEFAULT_SERVERS, redactUrl } from '../cluster/connection.ts';
import { resolveBridgeConfig } from '../config/actors.ts';
import { BRIDGE_TABLE } from '../config/bridge-table.ts';
import { newActorId } from '../config/checks.ts';
import { LOG_LEVEL_ENV } from '../config/common-options.ts';
import { subcommandHelp } from '../config/help.ts';
import { describeSource, type OptionSource } from '../config/option.ts';
import { StartupError } from '../errors/errors.ts';
import { runActor } from './actor.ts';
import { checkPortFree, listenFailure, type ListenSources } from './port-check.ts';

/** The keys from `keysFile`; a bad file fails with a message that also says where its name came from. */
function authenticator(keysFile: string | undefined, source: OptionSource | undefined): Authenticator {
  try {
    return createAuthenticator({ keysFile });
  } catch (err) {
    if (!(err instanceof StartupError) || source === undefined) throw err;
    throw new StartupError(err.reason, `${err.message} (keys file from ${describeSource(source)})`, {
      cause: err,
    });
  }
}

/** The error of a failed listen, if `err` is one (bridge.ts keeps the errno error as the cause). */
function listenCause(err: unknown): NodeJS.ErrnoException | undefined {
  const cause = err instanceof StartupError ? err.cause : undefined;
  return cause instanceof Error && (cause as NodeJS.ErrnoException).syscall === 'listen' ? cause : undefined;
}

/** Runs a bridge until it is signalled; resolves to the exit status. */
export async function bridgeCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveBridgeConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(BRIDGE_TABLE));
    return 0;
  }
  const { logLevel, keysFile, rateLimit, cache, ...options } = resolved.settings;
  const id = options.id ?? newActorId('bridge');
  // The bridge's logger reads the level from the environment (BridgeOptions has no log level).
  process.env[LOG_LEVEL_ENV] = logLevel;

  // Everything that can fail without NATS fails first: keys file, policy options, the port.
  const auth = authenticator(keysFile, resolved.sources.get('keysFile'));
  const policies = {
    auth,
    limiter: rateLimiterSource(auth, rateLimit),
    cache: responseCacheSource(cache),
  };
  const sources: ListenSources = { host: resolved.sources.get('host'), port: resolved.sources.get('port') };
  if (options.port !== 0) await checkPortFree(options.host, options.port, sources);

  const servers = options.nats.servers ?? DEFAULT_SERVERS;
  const at = (typeof servers === 'string' ? [servers] : servers).map(redactUrl).join(', ');
  return runActor({
    role: 'bridge',
    id,
    start: async (progress) => {
      progress(`bridge ${id}: connecting to NATS at ${at}…`);
      let bridge;
      try {
        bridge = await startBridge({ ...options, id, policies });
      } catch (err) {
        // The port was free a moment ago: something took it in between.
        const cause = listenCause(err);
        throw cause === undefined ? err : listenFailure(cause, options.host, options.port, sources);
      }
      progress(`bridge ${id}: serving ${bridge.url} (OpenAI-compatible API at /v1, web page at /)`);
      const on = [
        auth.enabled ? `API keys required (${keysFile ?? ''})` : undefined,
        policies.cache === undefined ? undefined : `response cache on (KV bucket ${cache.bucket ?? ''})`,
      ].filter((s) => s !== undefined);
      if (on.length > 0) progress(`bridge ${id}: ${on.join('; ')}`);
      return bridge;
    },
    describe: () => Promise.resolve(auth.enabled ? 'API keys required' : undefined),
  });
}
