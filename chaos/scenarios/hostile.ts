/**
 * hostile: while the load runs, every role's credential (client, bridge, router, replica,
 * operator) publishes hostile traffic straight onto the cluster's subjects. What the role's
 * permissions allow must be survived by validation; what they forbid must be refused by
 * nats-server. One check per role × attack class, with the permitted/forbidden table in its detail.
 */
import type { PermissionRole } from '../../src/cluster/permissions.ts';
import { GENERATE_SUBJECT, PROTOCOL_PREFIX, actorInboxPrefix } from '../../src/cluster/subjects.ts';
import { DEFAULT_CACHE_BUCKET } from '../../src/bridge/cache.ts';
import { DEFAULT_RATE_LIMIT_BUCKET } from '../../src/bridge/rate-limit-options.ts';
import { attackCatalogue, type AttackTargets } from '../hostile-attacks.ts';
import { fakeReplica } from '../hostile-live.ts';
import {
  HostileSender,
  NATS_MAX_PAYLOAD_BYTES,
  rawOversizedPublish,
  type MessageOutcome,
} from '../hostile.ts';
import type { Topology } from '../topology.ts';
import type { Scenario, ScenarioContext } from './scenario.ts';

/** The load client's id in run.ts: its request ids are `<id>-<n>`. */
/** How many of the load's request ids the cancels and resends aim at. */
const TARGETED_LOAD_IDS = 3;
/** Bytes past max_payload of the oversized raw publish. */
const OVER_MAX_PAYLOAD_BYTES = 1_024;

/** The buckets the topology's credentials are issued with (their permissions name them). */
export const PERMISSION_CONTEXT = { kvBuckets: [DEFAULT_CACHE_BUCKET, DEFAULT_RATE_LIMIT_BUCKET] };

/** One hostile identity: a role (undefined on an insecure cluster), its id, seed and inboxes. */
export interface HostileIdentity {
  role: PermissionRole | undefined;
  label: string;
  id: string;
  seedFile?: string;
  /** Its inbox prefix, or one per target subject (see {@link inboxWhereResponderMay}). */
  inboxPrefix: string | ((subject: string) => string);
}

/**
 * For a sender that may subscribe anywhere (operator, insecure): an inbox the responder of
 * `subject` may publish to: router-shaped for replica subjects, client-shaped for the rest.
 */
export function inboxWhereResponderMay(id: string): (subject: string) => string {
  return (subject) =>
    subject.startsWith(`${PROTOCOL_PREFIX}.replica.`)
      ? actorInboxPrefix('router', id)
      : actorInboxPrefix('client', id);
}

/** One line per message: what it was, permitted or forbidden, and what came of it. */
export function describeOutcomes(outcomes: MessageOutcome[]): string {
  const permitted = outcomes.filter((o) => o.permitted);
  const forbidden = outcomes.filter((o) => !o.permitted);
  const line = (o: MessageOutcome): string =>
    `${o.ok ? 'ok' : 'FAILED'}: ${o.message.label} → ${o.message.subject.slice(0, 60)}: ${
      o.permitted ? 'permitted' : 'forbidden'
    }, ${o.refused ? 'refused by nats-server' : 'not refused'}${o.reply ? `, reply ${o.reply}` : ''}`;
  const bad = outcomes.filter((o) => !o.ok);
  const head =
    `permitted ${permitted.length} (survived ${permitted.filter((o) => o.ok).length}), ` +
    `forbidden ${forbidden.length} (refused ${forbidden.filter((o) => o.ok).length})`;
  // Every failure in full; of the rest, one line per distinct verdict so the table stays short.
  const seen = new Set<string>();
  const samples = outcomes.filter((o) => {
    const key = `${o.permitted}|${o.reply ?? ''}|${o.message.subject}`;
    if (!o.ok || seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return [head, ...bad.map(line), ...samples.slice(0, 6).map(line)].join('; ');
}

/** Every actor process is still running (none crashed on what it received). */
export function checkAlive(topology: Topology, ctx: ScenarioContext, when: string): void {
  const actors = [...topology.routers, ...topology.replicas, ...topology.bridges];
  const dead = actors.filter((a) => a.child.exitCode !== null || a.child.signalCode !== null);
  ctx.check({
    name: `no actor crashed (${when})`,
    ok: dead.length === 0,
    detail:
      dead.length === 0
        ? `${actors.map((a) => a.id).join(', ')} running`
        : dead
            .map(
              (a) =>
                `${a.role} ${a.id} exited ${a.child.exitCode ?? a.child.signalCode}: ${a.log.slice(-400)}`,
            )
            .join(' | '),
  });
}

/** The catalogue's targets in this topology, for a sender with id `selfId`. */
export function targetsOf(
  topology: Topology,
  ctx: ScenarioContext,
  model: string,
  selfId: string,
  squatLoad: boolean,
): AttackTargets {
  // Live requests of the NATS load clients: their ids are what a hostile sender reuses.
  const live = ctx.load.recentIds(TARGETED_LOAD_IDS, { vias: ['nats'] });
  return {
    routers: topology.routers.map((r) => r.id),
    replicas: topology.replicas.map((r) => r.id),
    model,
    loadIds: live,
    selfId,
    squatId: squatLoad && live.length > 0 ? live[live.length - 1]! : `hostile-squat-${selfId}`,
  };
}

/**
 * Sends the whole catalogue as `who` and records one check per attack class, plus one for a raw
 * publish over max_payload (nats-server refuses it whatever the role: it closes the connection).
 */
export async function attackAs(
  topology: Topology,
  ctx: ScenarioContext,
  who: HostileIdentity,
  model: string,
  /** Whether the front door's "another requester's id" variant reuses a load id in flight. */
  squatLoad = true,
  /** Gets one `<class> <permitted|forbidden|mixed>` entry per attack class (the permission table). */
  row: string[] = [],
): Promise<number> {
  const sender = await HostileSender.connect({
    servers: topology.natsUrls,
    role: who.role,
    id: who.id,
    inboxPrefix: who.inboxPrefix,
    ctx: PERMISSION_CONTEXT,
    ...(who.seedFile === undefined ? {} : { seedFile: who.seedFile }),
  });
  let sent = 0;
  try {
    for (const attack of attackCatalogue(targetsOf(topology, ctx, model, who.id, squatLoad))) {
      const outcomes = await sender.send(attack);
      sent += outcomes.length;
      const permitted = outcomes.filter((o) => o.permitted).length;
      const kind = permitted === outcomes.length ? 'permitted' : permitted === 0 ? 'forbidden' : 'mixed';
      row.push(
        `${attack.name} ${kind}${kind === 'mixed' ? ` (${permitted}/${outcomes.length} permitted)` : ''}`,
      );
      ctx.check({
        name: `${who.label} × ${attack.name}`,
        ok: outcomes.every((o) => o.ok),
        detail: describeOutcomes(outcomes),
      });
    }
  } finally {
    await sender.close();
  }
  const url = topology.natsUrls[0]!;
  const verdict = await rawOversizedPublish(
    url,
    who.seedFile,
    GENERATE_SUBJECT,
    NATS_MAX_PAYLOAD_BYTES + OVER_MAX_PAYLOAD_BYTES,
  );
  ctx.check({
    name: `${who.label} × over max_payload (raw TCP, nats.js refuses to send it)`,
    ok: /maximum payload/i.test(verdict),
    detail: `forbidden for every role: ${NATS_MAX_PAYLOAD_BYTES + OVER_MAX_PAYLOAD_BYTES} bytes to ${GENERATE_SUBJECT} → ${verdict}`,
  });
  return sent + 1;
}

/** The identities of the secured topology, one per role, reusing the topology's credentials. */
function identities(topology: Topology): HostileIdentity[] {
  const c = topology.credentials;
  const rt = topology.routers[0]!.id;
  const rp = topology.replicas[0]!.id;
  const br = topology.bridges[0]?.id ?? 'br1';
  return [
    {
      role: 'client',
      label: 'client',
      id: 'client',
      seedFile: topology.client.seedFile,
      inboxPrefix: actorInboxPrefix('client', 'hostile'),
    },
    {
      role: 'bridge',
      label: `bridge ${br}`,
      id: br,
      seedFile: c.issue('bridge', br).seedFile,
      inboxPrefix: actorInboxPrefix('bridge', br),
    },
    {
      role: 'router',
      label: `router ${rt}`,
      id: rt,
      seedFile: c.issue('router', rt).seedFile,
      inboxPrefix: actorInboxPrefix('router', rt),
    },
    {
      role: 'replica',
      label: `replica ${rp}`,
      id: rp,
      seedFile: c.issue('replica', rp).seedFile,
      inboxPrefix: actorInboxPrefix('replica', rp),
    },
    {
      role: 'operator',
      label: 'operator',
      id: 'operator',
      seedFile: topology.operator.seedFile,
      inboxPrefix: inboxWhereResponderMay('hostile-op'),
    },
  ];
}

export const hostile: Scenario = {
  name: 'hostile',
  invariant:
    "Hostile traffic from every role's credential: what its permissions allow is survived by validation " +
    '(error replies where the protocol has them, no crash, the load completes exactly); what they forbid ' +
    'is refused by nats-server.',
  allowedErrors: [],
  async run(topology, ctx) {
    await ctx.load.nextStream();
    const record = ctx.fault({
      name: 'hostile traffic',
      target: 'every subject, as client, bridge, router, replica and operator',
      startedAt: Date.now(),
    });
    const model = 'tiny-gpt2';
    const who = identities(topology);
    const operator = await HostileSender.connect({
      servers: topology.natsUrls,
      role: 'operator',
      id: 'operator',
      seedFile: topology.operator.seedFile,
      inboxPrefix: actorInboxPrefix('router', 'hostile-fake'),
      ctx: PERMISSION_CONTEXT,
    });
    const rows = who.map((): string[] => []);
    const [counts, fake] = await Promise.all([
      Promise.all(who.map((w, i) => attackAs(topology, ctx, w, model, true, rows[i]))),
      fakeReplica(operator.nc).finally(() => operator.close()),
    ]);
    ctx.check({
      name: 'operator × fake replica heartbeat',
      ok: true,
      detail:
        `permitted (operator publishes anywhere): a heartbeat cloned from ${fake.cloned} for a replica no ` +
        `process runs attracted ${fake.attracted} attempts, swallowed; routers must fail them over (history)`,
    });
    // The table the checks above were judged by (src/cluster/permissions.ts), one row per role.
    ctx.check({
      name: 'permission table (per role: attack class → permitted or forbidden)',
      ok: true,
      detail: who.map((w, i) => `${w.label}: ${rows[i]!.join(', ')}`).join(' | '),
    });
    checkAlive(topology, ctx, 'after the hostile traffic');
    const sent = counts.reduce((a, b) => a + b, 0);
    Object.assign(record, {
      verified: `${sent} hostile messages published over ${who.length} roles; refusals checked per role × class`,
      endedAt: Date.now(),
    });
  },
};
