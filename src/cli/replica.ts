/** `switchyard replica`: one replica actor in this process. */
import { newActorId } from '../config/checks.ts';
import { resolveReplicaConfig } from '../config/actors.ts';
import { subcommandHelp } from '../config/help.ts';
import { REPLICA_TABLE } from '../config/replica-table.ts';
import { LOG_LEVEL_ENV } from '../config/common-options.ts';
import { runActor } from './actor.ts';
import type { Replica } from '../replica/replica.ts';
import { checkModelDir, displayPath, modelLabel } from './preflight.ts';

/** Runs a replica until it is signalled; resolves to the exit status. */
export async function replicaCommand(argv: readonly string[]): Promise<number> {
  const resolved = resolveReplicaConfig({ argv });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(REPLICA_TABLE));
    return 0;
  }
  const { logLevel, ...options } = resolved.settings;
  checkModelDir(options.engine.modelDir, resolved.sources.get('engine.modelDir'));
  const id = options.id ?? newActorId('replica');
  // The replica's logger reads the level from the environment (ReplicaOptions has no log level).
  process.env[LOG_LEVEL_ENV] = logLevel;
  const modelDir = options.engine.modelDir;
  const device = options.engine.device ?? 'cpu';
  let started: Replica | undefined;
  return runActor({
    role: 'replica',
    id,
    start: async (progress) => {
      const { startReplica } = await import('../replica/replica.ts'); // loads onnxruntime: only now
      started = await startReplica(
        { ...options, id, engine: { ...options.engine, modelDir: displayPath(modelDir) } },
        { onProgress: progress },
      );
      return started;
    },
    // What it serves, resolved (a registry URL names an alias; the replica knows the version).
    describe: async () => {
      const label = started
        ? `${started.serving.model}@${started.serving.version}`
        : await modelLabel(modelDir);
      return `${label}, ${device}`;
    },
  });
}
