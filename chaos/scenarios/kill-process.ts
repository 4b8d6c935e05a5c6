/** SIGKILL one actor mid-stream, verifying its pid is gone. */
import type { ActorProcess } from '../actors.ts';
import { eventually, pidGone } from '../verify.ts';
import type { ScenarioContext } from './scenario.ts';

/** Kills the actor and records the fault, verified when the pid disappeared. */
export async function killMidStream(actor: ActorProcess, ctx: ScenarioContext): Promise<void> {
  await ctx.load.nextStream();
  const pid = actor.child.pid;
  if (pid === undefined) throw new Error(`${actor.role} ${actor.id} has no pid`);
  const record = { name: 'SIGKILL', target: `${actor.role} ${actor.id} (pid ${pid})`, startedAt: Date.now() };
  ctx.fault(record);
  actor.signal('SIGKILL');
  if (await eventually(() => pidGone(pid))) Object.assign(record, { verified: 'pid gone (ESRCH)' });
  Object.assign(record, { endedAt: Date.now() });
}
