/**
 * Fault injection for tests and the chaos suite: stall the engine while the process answers,
 * delay or fail steps, drop heartbeats. The replica subscribes to its fault subject only when
 * started with fault injection enabled; it is never on by default.
 */
import type { Msg } from '@nats-io/nats-core';
import type { ServingEngine } from '../engine/types.ts';
import { toSwitchyardError } from '../errors/errors.ts';
import type { Logger } from '../telemetry/logger.ts';
import { parseObject, readEnum, readInt, readOptional } from '../validation/fields.ts';

/** What a `crash` fault can kill. */
const CRASH_TARGETS = ['worker', 'tokenizer'] as const;
import type { HeartbeatPublisher } from './heartbeat.ts';

/** A fault command as it travels (JSON, snake_case). */
export interface FaultCommand {
  stall?: boolean;
  step_delay_ms?: number;
  fail_steps?: number;
  drop_heartbeats?: boolean;
  /** Kill the engine's worker or tokenizer thread (the replica then exits 1 for its supervisor). */
  crash?: 'worker' | 'tokenizer';
}

function readBool(field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${field} must be a boolean`);
  return value;
}

/** Applies one fault command and answers the requester (if any) with `{ok}` or the error. */
export function applyFault(
  msg: Msg,
  engine: ServingEngine,
  heartbeat: HeartbeatPublisher,
  log: Logger,
): void {
  try {
    const o = parseObject(msg.data, 'fault command');
    const stall = readOptional(o, 'stall', readBool);
    const stepDelayMs = readOptional(o, 'step_delay_ms', (f, v) => readInt(f, v, { min: 0, max: 60_000 }));
    const failSteps = readOptional(o, 'fail_steps', (f, v) => readInt(f, v, { min: 0, max: 1_000_000 }));
    const dropHeartbeats = readOptional(o, 'drop_heartbeats', readBool);
    const crash = readOptional(o, 'crash', (f, v) => readEnum(f, v, CRASH_TARGETS));
    engine.injectFault({
      ...(stall !== undefined ? { stall } : {}),
      ...(stepDelayMs !== undefined ? { stepDelayMs } : {}),
      ...(failSteps !== undefined ? { failSteps } : {}),
      ...(crash !== undefined ? { crash } : {}),
    });
    if (dropHeartbeats !== undefined) heartbeat.dropped = dropHeartbeats;
    log.warn({ fault: o }, 'fault injected');
    if (msg.reply) msg.respond(JSON.stringify({ ok: true }));
  } catch (err) {
    if (msg.reply) msg.respond(JSON.stringify({ ok: false, error: toSwitchyardError(err).message }));
  }
}
