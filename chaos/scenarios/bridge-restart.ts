/**
 * bridge-restart: SIGKILL one bridge mid-stream, then start it again on the same port. Its HTTP
 * clients see the connection cut (or refused while it is down) and retry with the same
 * `x-request-id`. The OpenAI API has no resume, so the retry restarts the generation: for exact
 * requests it reproduces what the client already has, which a client can skip (the checker
 * requires every cut attempt's text to be a prefix of the reference, and the completed one equal).
 */
import { eventually, pidGone } from '../verify.ts';
import type { Scenario } from './scenario.ts';

export const bridgeRestart: Scenario = {
  name: 'bridge-restart',
  invariant:
    "A bridge SIGKILLed mid-stream and restarted on its port: its clients' retries with the same request id complete exactly, every cut attempt's text a prefix of the reference (nothing the client has is contradicted or needed twice); no error is allowed.",
  allowedErrors: [],
  async run(topology, ctx) {
    if (topology.bridges.length === 0) throw new Error('bridge-restart needs a topology with a bridge');
    const victim = topology.bridges[Math.floor(ctx.random() * topology.bridges.length)]!;
    const url = victim.url;
    const clients = ctx.load.plans.filter((p) => p.bridgeUrl === url).map((p) => p.client);
    if (clients.length === 0) throw new Error(`no load client sends to bridge ${victim.id} (${url})`);
    await ctx.load.nextStream({ clients, vias: ['http-stream', 'http-chat'] });
    const pid = victim.child.pid;
    if (pid === undefined) throw new Error(`bridge ${victim.id} has no pid`);
    const record = ctx.fault({
      name: 'SIGKILL',
      target: `bridge ${victim.id} (pid ${pid})`,
      startedAt: Date.now(),
    });
    victim.signal('SIGKILL');
    if (await eventually(() => pidGone(pid))) record.verified = 'pid gone (ESRCH)';
    const next = await topology.restart(victim);
    record.endedAt = Date.now();
    ctx.check({
      name: 'the restarted bridge serves where its clients retry',
      ok: next.url === url,
      detail: `before ${url}, after ${next.url ?? 'no URL'} (${record.endedAt - record.startedAt} ms down)`,
    });
    // The fault must have cut requests in flight, or it proved nothing about retries.
    const cut = (await ctx.load.done).filter(
      (op) =>
        clients.includes(op.client) &&
        op.invokedAt < record.startedAt &&
        op.outcome.at > record.startedAt &&
        op.chunks.some((c) => (c.attempt ?? 1) > 1),
    );
    ctx.check({
      name: 'requests in flight on the killed bridge were retried with their request id',
      ok: cut.length > 0,
      detail: `${cut.length} retried (${cut.filter((op) => op.outcome.kind === 'ok').length} completed): ${cut
        .map((op) => op.id)
        .join(', ')}`,
    });
  },
};
