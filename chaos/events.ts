/**
 * The actors' structured logs (pino JSON lines on stderr, `--log-level warn`) turned into the
 * History's timing evidence: when a router noticed a fault and resumed a request elsewhere. The
 * report derives detection and recovery times from these events alone, so that a History JSON
 * is enough to rebuild it.
 */
import type { ActorEvent } from './history/types.ts';

/** pino's numeric level of `warn`: lines below it are not events. */
export const WARN_LEVEL = 40;

/** The router's message when an attempt fails and the request resumes on another replica. */
export const FAILOVER_MESSAGE = 'attempt failed; resuming elsewhere';

/** The `what` of a router's failover event. */
export const FAILOVER = 'failover';

interface LogLine {
  level?: unknown;
  time?: unknown;
  role?: unknown;
  actor?: unknown;
  msg?: unknown;
  requestId?: unknown;
  replica?: unknown;
  reason?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Events from one actor's captured output: every JSON line at warn or above with a time; other
 * output (progress on stdout, stack traces) is not evidence and is skipped.
 */
export function parseActorLog(output: string, fallbackActor: string): ActorEvent[] {
  const events: ActorEvent[] = [];
  for (const raw of output.split('\n')) {
    if (!raw.startsWith('{')) continue;
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch {
      continue;
    }
    if (typeof line.level !== 'number' || line.level < WARN_LEVEL || typeof line.time !== 'number') continue;
    const role = str(line.role);
    const id = str(line.actor);
    const msg = str(line.msg) ?? '';
    const requestId = str(line.requestId);
    const replica = str(line.replica);
    const reason = str(line.reason);
    events.push({
      at: line.time,
      actor: role !== undefined && id !== undefined ? `${role} ${id}` : fallbackActor,
      what: msg === FAILOVER_MESSAGE ? FAILOVER : msg,
      ...(requestId === undefined ? {} : { requestId }),
      ...(replica === undefined ? {} : { replica }),
      ...(reason === undefined ? {} : { reason }),
    });
  }
  return events;
}

/** Every actor's events, oldest first. */
export function collectEvents(
  actors: ReadonlyArray<{ role: string; id: string; log: string }>,
): ActorEvent[] {
  return actors.flatMap((a) => parseActorLog(a.log, `${a.role} ${a.id}`)).sort((x, y) => x.at - y.at);
}
