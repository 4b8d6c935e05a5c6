/**
 * hostile-insecure: the topology runs without an authorization block (as `up --insecure`), and
 * an anonymous connection publishes hostile traffic onto every subject the cluster uses, and
 * attacks the live request path (fake replica, forged chunks in live streams, a fake router in
 * the front door's queue group, forged heartbeats of real actors). Validation must survive all
 * of it: no crash, no lost request, the load exact. The checks say what it cannot prevent.
 */
import {
  fakeReplica,
  forgeReplicaStuck,
  forgeRouterStopped,
  hijackFrontDoor,
  injectIntoStreams,
} from '../hostile-live.ts';
import { HostileSender } from '../hostile.ts';
import { PERMISSION_CONTEXT, attackAs, checkAlive, inboxWhereResponderMay } from './hostile.ts';
import type { Scenario } from './scenario.ts';

export const hostileInsecure: Scenario = {
  name: 'hostile-insecure',
  invariant:
    'On a cluster without NATS authorization, hostile traffic on every subject (heartbeats, work, ' +
    'control, inboxes) crashes no actor and loses no request: every request completes exactly.',
  allowedErrors: [],
  shape: { insecure: true },
  async run(topology, ctx) {
    await ctx.load.nextStream();
    const record = ctx.fault({
      name: 'hostile traffic (insecure cluster)',
      target: 'every subject, anonymously',
      startedAt: Date.now(),
    });
    const anyone = await HostileSender.connect({
      servers: topology.natsUrls,
      role: undefined,
      id: 'anyone',
      inboxPrefix: inboxWhereResponderMay('anyone'),
      ctx: PERMISSION_CONTEXT,
    });
    const nc = anyone.nc;
    const rt = topology.routers[0]!.id;
    const rp = topology.replicas[0]!.id;
    try {
      const catalogue = attackAs(
        topology,
        ctx,
        { role: undefined, label: 'anyone', id: 'anyone', inboxPrefix: inboxWhereResponderMay('anyone') },
        'tiny-gpt2',
        // Squats a live load id while the live attacks below make its client resend: requests
        // are keyed by (requester, id), so the owner's resends must still complete exactly.
        true,
      );
      const live = (async () => {
        const [fake, intoRouters, intoClients] = await Promise.all([
          fakeReplica(nc),
          injectIntoStreams(nc, 'router'),
          injectIntoStreams(nc, 'client'),
        ]);
        const hijacked = await hijackFrontDoor(nc);
        forgeRouterStopped(nc, rt);
        const stuck = await forgeReplicaStuck(nc, rp);
        return { fake, intoRouters, intoClients, hijacked, stuck };
      })();
      const [sent, l] = await Promise.all([catalogue, live]);
      const cannot = 'an insecure cluster cannot prevent this';
      ctx.check({
        name: 'anyone × fake replica heartbeat',
        ok: true,
        detail:
          `${cannot}: a heartbeat cloned from ${l.fake.cloned} announced a replica no process runs; it ` +
          `attracted ${l.fake.attracted} attempts, swallowed; each cost its request the router's ack timeout, ` +
          'then failed over (the history judges the requests)',
      });
      ctx.check({
        name: 'anyone × forged chunks in live streams',
        ok: true,
        detail:
          `${cannot}: one forged chunk (seq 9999, token 50000) published into ${l.intoRouters.length} live ` +
          `router inboxes and ${l.intoClients.length} live client inboxes; receivers must treat it as a ` +
          'protocol violation (router fails over, client resends) and never pass its token on (history)',
      });
      ctx.check({
        name: 'anyone × fake router in the front door queue group',
        ok: true,
        detail:
          `${cannot}: a subscriber in queue group sy-routers took ${l.hijacked} requests and answered none; ` +
          'their clients resent after the ack timeout (history)',
      });
      ctx.check({
        name: 'anyone × forged heartbeats of real actors',
        ok: true,
        detail:
          `${cannot}: router ${rt} announced stopped (replicas drop its work as orphans: it fails over), ` +
          `replica ${rp} announced stuck (${l.stuck}): routers may fail its work over until its next real beat`,
      });
      ctx.check({
        name: 'anyone × request-id squatting',
        ok: true,
        detail:
          "a live load request's id sent first by a stranger: routers key requests by (requester, id), so " +
          "the stranger's is another request and the owner's (and its resends) go on; the history judges " +
          'them (an earlier run, before that fix, saw the owner end forbidden)',
      });
      checkAlive(topology, ctx, 'after the hostile traffic');
      Object.assign(record, {
        verified:
          `${sent} catalogue messages published without credentials on an unauthenticated server; ` +
          `${l.fake.attracted} attempts attracted by the fake replica, ${l.intoRouters.length + l.intoClients.length} ` +
          `streams injected, ${l.hijacked} requests hijacked`,
        endedAt: Date.now(),
      });
    } finally {
      await anyone.close();
    }
  },
};
