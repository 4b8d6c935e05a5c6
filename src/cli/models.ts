/**
 * `switchyard models push|list|show|rm|alias`: the model registry from any host that reaches
 * NATS (no collector needed). With `--json`, stdout carries one JSON document and nothing else;
 * messages go to stderr. `rm` asks the registry to refuse a version that an alias or a running
 * replica uses; the replicas it learns from their heartbeats.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../cluster/connection.ts';
import { operatorConnection } from './local-up.ts';
import { splitArgs } from './split-args.ts';
import { assertId, assertRegistryRef } from '../cluster/subjects.ts';
import { resolveModelsConfig } from '../config/actors.ts';
import { subcommandHelp } from '../config/help.ts';
import { MODELS_TABLE, type ModelsSettings } from '../config/models-table.ts';
import { ModelNotFoundError, StartupError } from '../errors/errors.ts';
import type { AliasRecord } from '../registry/alias-record.ts';
import { Registry } from '../registry/registry.ts';
import { replicasServing } from '../registry/serving.ts';
import { parseModelRef } from '../registry/source.ts';
import {
  versionManifestObject,
  versionSize,
  type VersionLineage,
  type VersionManifest,
} from '../registry/version-manifest.ts';

/** The actions of `models`, with the positional arguments each takes. */
const ACTIONS = {
  push: '<folder>',
  list: '[<id>]',
  show: '<id>@<version|alias>',
  rm: '<id>@<version>',
  alias: '<id> <alias> <version>',
} as const;
type Action = keyof typeof ACTIONS;

/** Messages: stderr, so stdout holds only data. */
function say(line: string): void {
  process.stderr.write(`${line}\n`);
}

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function usage(action: Action, why: string): StartupError {
  return new StartupError(
    'config',
    `models ${action}: ${why}; usage: switchyard models ${action} ${ACTIONS[action]}`,
  );
}

/** Runs `models <action>`; resolves to the exit status. */
export async function modelsCommand(argv: readonly string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h') {
    process.stdout.write(subcommandHelp(MODELS_TABLE));
    return 0;
  }
  if (!Object.hasOwn(ACTIONS, action)) {
    throw new StartupError(
      'config',
      `models: unknown action '${action}'; the actions are ${Object.keys(ACTIONS).join(', ')}`,
    );
  }
  const act = action as Action;
  const { positionals, flags } = splitArgs(rest, MODELS_TABLE);
  const resolved = resolveModelsConfig({ argv: flags });
  if (resolved.help) {
    process.stdout.write(subcommandHelp(MODELS_TABLE));
    return 0;
  }
  const s = resolved.settings;
  const count = { push: [1, 1], list: [0, 1], show: [1, 1], rm: [1, 1], alias: [3, 3] }[act];
  if (positionals.length < (count[0] ?? 0) || positionals.length > (count[1] ?? 0)) {
    throw usage(
      act,
      `expected ${ACTIONS[act]}, got ${positionals.length === 0 ? 'nothing' : positionals.map((p) => `'${p}'`).join(' ')}`,
    );
  }
  const nats = operatorConnection('models', s.nats, (line) => process.stderr.write(`${line}\n`));
  const nc = await connectNats({ name: 'switchyard-models', ...nats });
  try {
    await run(act, positionals, s, nc);
    return 0;
  } finally {
    await nc.close();
  }
}

async function run(action: Action, args: string[], s: ModelsSettings, nc: NatsConnection): Promise<void> {
  const open = (create: boolean): Promise<Registry> => Registry.open(nc, { create, timeoutMs: s.timeoutMs });
  switch (action) {
    case 'push':
      return push(await open(true), args[0] ?? '', s);
    case 'list': {
      if (args[0] !== undefined) assertId('model id', args[0]);
      let registry: Registry | undefined;
      try {
        registry = await open(false);
      } catch (err) {
        if (!(err instanceof ModelNotFoundError)) throw err;
      }
      return list(registry, args[0], s);
    }
    case 'show': {
      const { id, ref } = parseModelRef(args[0] ?? '');
      return show(await open(false), id, ref, s);
    }
    case 'rm': {
      const { id, ref } = parseModelRef(args[0] ?? '');
      return remove(await open(false), nc, id, ref, s);
    }
    case 'alias': {
      const [id = '', alias = '', version = ''] = args;
      assertId('model id', id);
      assertRegistryRef('alias', alias);
      assertRegistryRef('version', version);
      const record = await (
        await open(true)
      ).alias(id, alias, version, {
        ...(s.by !== undefined ? { by: s.by } : {}),
        ...(s.reason !== undefined ? { reason: s.reason } : {}),
      });
      if (s.json) printJson(aliasObject(record));
      else
        say(
          `models: ${id}@${alias} -> ${version} (by ${record.by}${record.reason === '' ? '' : `: ${record.reason}`})`,
        );
      return;
    }
  }
}

const short = (digest: string): string => digest.slice(0, 12);

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

function aliasObject(a: AliasRecord): Record<string, unknown> {
  return { alias: a.alias, version: a.version, by: a.by, at: a.at, reason: a.reason, revision: a.revision };
}

async function push(registry: Registry, folder: string, s: ModelsSettings): Promise<void> {
  const lineage: VersionLineage = {};
  if (s.parent !== undefined) lineage.parent = s.parent;
  if (s.dataset !== undefined) lineage.dataset = s.dataset;
  if (s.trainer !== undefined) lineage.trainer = s.trainer;
  const { manifest, created } = await registry.push(folder, {
    ...(s.id !== undefined ? { id: s.id } : {}),
    ...(s.version !== undefined ? { version: s.version } : {}),
    ...(s.by !== undefined ? { by: s.by } : {}),
    lineage,
  });
  if (s.json) {
    printJson({ created, manifest: versionManifestObject(manifest) });
    return;
  }
  const what = `${manifest.id}@${manifest.version} (digest ${short(manifest.digest)}, ${manifest.files.length} files, ${bytes(versionSize(manifest))})`;
  say(
    created
      ? `models: pushed ${what}`
      : `models: ${what} is in the registry already, with this digest: nothing to do`,
  );
}

function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  out([line(head), ...rows.map(line)].join('\n'));
}

async function list(
  registry: Registry | undefined,
  id: string | undefined,
  s: ModelsSettings,
): Promise<void> {
  const versions = registry === undefined ? [] : await registry.list(id);
  const aliases = registry === undefined ? [] : await registry.aliases(id);
  const aliasesOf = (m: VersionManifest): string[] =>
    aliases.filter((a) => a.id === m.id && a.version === m.version).map((a) => a.alias);
  if (s.json) {
    printJson({ versions: versions.map((m) => ({ ...versionManifestObject(m), aliases: aliasesOf(m) })) });
    return;
  }
  if (versions.length === 0) {
    say(
      id === undefined
        ? 'models: the registry holds no versions'
        : `models: the registry holds no versions of ${id}`,
    );
    return;
  }
  table(
    ['model', 'version', 'digest', 'files', 'size', 'created', 'pushed by', 'aliases'],
    versions.map((m) => [
      m.id,
      m.version,
      short(m.digest),
      String(m.files.length),
      bytes(versionSize(m)),
      m.createdAt,
      m.pushedBy,
      aliasesOf(m).join(','),
    ]),
  );
}

async function show(registry: Registry, id: string, ref: string, s: ModelsSettings): Promise<void> {
  const { manifest: m, aliases, history } = await registry.show(id, ref);
  if (s.json) {
    printJson({
      manifest: versionManifestObject(m),
      aliases: aliases.map(aliasObject),
      history: history.map(aliasObject),
    });
    return;
  }
  out(`${m.id}@${m.version}${ref === m.version ? '' : ` (${ref})`}`);
  out(`  digest     ${m.digest}`);
  out(`  created    ${m.createdAt} by ${m.pushedBy}`);
  const lineage = Object.entries(m.lineage).map(([k, v]) => `${k}=${String(v)}`);
  out(`  lineage    ${lineage.length === 0 ? '-' : lineage.join(' ')}`);
  out(`  aliases    ${aliases.length === 0 ? '-' : aliases.map((a) => a.alias).join(', ')}`);
  out(`  files      ${m.files.length}, ${bytes(versionSize(m))}`);
  for (const f of m.files) out(`    ${f.sha256}  ${f.path}  (${bytes(f.size)})`);
  if (history.length > 0) {
    out('  alias history');
    for (const h of history)
      out(`    ${h.at}  ${h.alias} -> ${h.version}  by ${h.by}${h.reason === '' ? '' : `: ${h.reason}`}`);
  }
}

async function remove(
  registry: Registry,
  nc: NatsConnection,
  id: string,
  version: string,
  s: ModelsSettings,
): Promise<void> {
  if ((await registry.getVersion(id, version)) === undefined) {
    throw new ModelNotFoundError(
      `${id}@${version}: no such version in the registry (rm takes a version, not an alias)`,
    );
  }
  // An alias refusal needs no listening: the registry refuses it with inUseBy left empty.
  const aliased = (await registry.aliases(id)).some((a) => a.version === version);
  if (!aliased) say(`models: listening to replica heartbeats for who serves ${id}@${version}…`);
  const inUseBy = aliased ? [] : await replicasServing(nc, id, version);
  const removed = await registry.remove(id, version, { inUseBy });
  if (s.json) printJson({ removed: versionManifestObject(removed) });
  else say(`models: removed ${id}@${version} (digest ${short(removed.digest)})`);
}
