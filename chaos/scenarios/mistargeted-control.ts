/**
 * mistargeted-control: the runner's own control. A SIGSTOP meant for a replica is sent to another
 * process (a decoy of the scenario's own), and the runner verifies the fault on the replica, as
 * it would a real one: the replica never enters state T, so the fault stays unverified. The run
 * passes exactly when the checker catches that (`expectCaught`); a mistarget that passed as
 * verified would mean faults are not really checked, and fails the run.
 */
import { spawn } from 'node:child_process';
import { eventually, processState } from '../verify.ts';
import type { Scenario } from './scenario.ts';

/** How long the decoy sleeps if nothing ends it (it is killed at the end of the scenario). */
const DECOY_LIFETIME_S = 60;

export const mistargetedControl: Scenario = {
  name: 'mistargeted-control',
  invariant:
    'A SIGSTOP sent to the wrong pid must leave the fault on the replica unverified, and the checker must report it: the scenario passes only when the mistarget is caught; every request still completes exactly.',
  allowedErrors: [],
  short: true,
  expectCaught: true,
  async run(topology, ctx) {
    const victim = topology.replicas[Math.floor(ctx.random() * topology.replicas.length)]!;
    const pid = victim.child.pid;
    if (pid === undefined) throw new Error(`replica ${victim.id} has no pid`);
    const decoy = spawn('sleep', [String(DECOY_LIFETIME_S)], { stdio: 'ignore' });
    const exited = new Promise((r) => decoy.once('exit', r));
    try {
      await ctx.load.nextStream();
      const record = ctx.fault({
        name: 'SIGSTOP (mistargeted)',
        target: `replica ${victim.id} (pid ${pid}); sent to decoy pid ${decoy.pid}`,
        startedAt: Date.now(),
      });
      decoy.kill('SIGSTOP');
      // Verified as stop-replica verifies: on the replica's pid, which was never stopped.
      if (await eventually(() => processState(pid) === 'T')) record.verified = 'process state T';
      const decoyStopped = decoy.pid !== undefined && processState(decoy.pid) === 'T';
      ctx.check({
        name: 'the signal went to the decoy',
        ok: decoyStopped,
        detail: `decoy pid ${decoy.pid} state ${decoy.pid === undefined ? '?' : processState(decoy.pid)}`,
      });
      record.endedAt = Date.now();
    } finally {
      decoy.kill('SIGKILL');
      await exited;
    }
  },
};
