/**
 * How operator commands (`models`, `dataset`) find a `switchyard up` on this machine without
 * flags: each local `up` writes a record (its NATS URL and, when secured, its operator
 * credential's seed file) into a private directory, and removes it when it stops. A command
 * given no NATS settings at all uses the one live `up` it finds; with several, it asks for
 * `--nats`, since it cannot know which cluster was meant.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { ConnectionOptions } from '../cluster/connection.ts';
import { StartupError } from '../errors/errors.ts';

/** What one running `up` tells local commands. */
export interface LocalUp {
  pid: number;
  /** Its NATS URL. */
  url: string;
  /** The operator credential's nkey seed file (a secured local server), else undefined. */
  operatorSeedFile?: string;
}

/** The private directory of the records: `$XDG_RUNTIME_DIR/switchyard`, else `<tmp>/switchyard-<user>`. */
export function localUpDir(env: NodeJS.ProcessEnv = process.env): string {
  const runtime = env.XDG_RUNTIME_DIR;
  return runtime ? join(runtime, 'switchyard') : join(tmpdir(), `switchyard-${userInfo().username}`);
}

const recordFile = (dir: string, pid: number): string => join(dir, `up-${pid}.json`);

/** Writes this process's record (0600 in a 0700 directory); returns its remover. */
export function announceLocalUp(up: Omit<LocalUp, 'pid'>, dir = localUpDir()): () => void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = recordFile(dir, process.pid);
  writeFileSync(file, JSON.stringify({ pid: process.pid, ...up }), { mode: 0o600 });
  return () => rmSync(file, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The records of the `up`s running now (stale records of dead ones are skipped). */
export function localUps(dir = localUpDir()): LocalUp[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^up-\d+\.json$/.test(n));
  } catch {
    return [];
  }
  const ups: LocalUp[] = [];
  for (const name of names) {
    try {
      const up = JSON.parse(readFileSync(join(dir, name), 'utf8')) as LocalUp;
      if (typeof up.pid === 'number' && typeof up.url === 'string' && alive(up.pid)) ups.push(up);
    } catch {
      // half-written or foreign: not a record
    }
  }
  return ups;
}

/** True when the command was given any NATS setting (URL or credential). */
function given(nats: ConnectionOptions): boolean {
  return Object.values(nats).some((v) => v !== undefined);
}

/**
 * The connection options of an operator command: what it was given, or, given nothing, the one
 * local `up` (its URL and operator credential). `say` tells the user which was used.
 */
export function operatorConnection(
  command: string,
  nats: ConnectionOptions,
  say: (line: string) => void,
  dir = localUpDir(),
): ConnectionOptions {
  if (given(nats)) return nats;
  const ups = localUps(dir);
  if (ups.length === 0) return nats;
  if (ups.length > 1) {
    throw new StartupError(
      'config',
      `${command}: ${ups.length} switchyard up run on this machine (pids ${ups.map((u) => u.pid).join(', ')}); ` +
        'say which with --nats URL (and --nats-nkey-seed-file, from its summary)',
    );
  }
  const [up] = ups as [LocalUp];
  say(
    `${command}: using the switchyard up at ${up.url} (pid ${up.pid})${up.operatorSeedFile ? ' with its operator credential' : ''}`,
  );
  return { ...nats, servers: up.url, ...(up.operatorSeedFile ? { nkeySeedFile: up.operatorSeedFile } : {}) };
}
