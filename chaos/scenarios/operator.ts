/** Helpers the engine and process scenarios share: an operator connection, a bounded wait. */
import type { NatsConnection } from '@nats-io/nats-core';
import { connectNats } from '../../src/cluster/connection.ts';
import type { Topology } from '../topology.ts';
import type { ScenarioContext } from './scenario.ts';

/** Opens an operator connection to the topology's NATS (heartbeats, fault commands), runs `fn`, closes it. */
export async function withOperator<T>(
  topology: Topology,
  fn: (nc: NatsConnection) => Promise<T>,
): Promise<T> {
  const nc = await connectNats({ servers: topology.natsUrls, nkeySeedFile: topology.operator.seedFile });
  try {
    return await fn(nc);
  } finally {
    await nc.close();
  }
}

/**
 * Waits for the next stream to start, at most `ms`: once the load's duration is over no stream
 * starts again, and a scenario with several faults must not wait for one forever.
 */
export async function nextStreamWithin(ctx: ScenarioContext, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([ctx.load.nextStream().then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
