/**
 * The supervisor of `up`'s children over fake runs and fake timers: restarts after unasked
 * exits, capped exponential backoff and its reset, failed restarts retried, the first start not
 * retried, and a stop that ends supervision for good.
 */
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { Exit } from '../../src/cli/children.ts';
import {
  backoffDelay,
  describeEvent,
  Supervisor,
  type RestartPolicy,
  type SupervisedProcess,
  type SupervisorEvent,
} from '../../src/cli/supervisor.ts';

const POLICY: RestartPolicy = { initialDelayMs: 100, maxDelayMs: 400, resetAfterMs: 10_000 };

/** One run of a child, driven by the test. */
class FakeRun implements SupervisedProcess {
  readonly ready: Promise<unknown>;
  readonly exited: Promise<Exit>;
  running = true;
  stopCalls = 0;
  private resolveReady = (): void => {};
  private rejectReady = (_err: Error): void => {};
  private resolveExit = (_exit: Exit): void => {};

  constructor(readonly pid: number) {
    this.ready = new Promise((resolve, reject) => {
      this.resolveReady = () => resolve(undefined);
      this.rejectReady = reject;
    });
    this.ready.catch(() => {});
    this.exited = new Promise((resolve) => (this.resolveExit = resolve));
  }

  becomeReady(): void {
    this.resolveReady();
  }

  /** Exits; before ready, `ready` rejects with `why` first (as ActorProcess does). */
  exit(exit: Exit, why = 'exited before it was ready'): void {
    this.running = false;
    this.rejectReady(new Error(why));
    this.resolveExit(exit);
  }

  stop(): Promise<Exit> {
    this.stopCalls++;
    this.exit({ code: 0, signal: null });
    return this.exited;
  }

  killNow(): void {
    this.exit({ code: null, signal: 'SIGKILL' });
  }
}

/** Lets promise callbacks run (fake timers do not touch setImmediate). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A supervisor over fake runs, with a clock the test moves. */
function harness(throwOnLaunch?: number): {
  supervisor: Supervisor<FakeRun>;
  runs: FakeRun[];
  events: SupervisorEvent[];
  clock: { now: number };
} {
  const runs: FakeRun[] = [];
  const events: SupervisorEvent[] = [];
  const clock = { now: 0 };
  let launches = 0;
  const launch = (): FakeRun => {
    if (++launches === throwOnLaunch) throw new Error('spawn EAGAIN');
    const run = new FakeRun(1000 + runs.length);
    runs.push(run);
    return run;
  };
  const supervisor = new Supervisor(
    launch,
    (e) => events.push(e),
    POLICY,
    () => clock.now,
  );
  return { supervisor, runs, events, clock };
}

/** Starts the supervisor and makes its first run ready. */
async function started(h: ReturnType<typeof harness>): Promise<FakeRun> {
  const start = h.supervisor.start();
  const first = h.runs[0];
  assert.ok(first);
  first.becomeReady();
  assert.equal(await start, first);
  assert.equal(h.supervisor.state, 'running');
  return first;
}

describe('Supervisor', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('doubles the delay up to the cap', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 2000].map((n) => backoffDelay(n, POLICY)),
      [100, 200, 400, 400, 400, 400],
    );
  });

  it('restarts a child that exits unasked, retries failed restarts with backoff, then counts it back', async () => {
    const h = harness();
    const first = await started(h);
    first.exit({ code: null, signal: 'SIGKILL' });
    await settle();
    assert.equal(h.supervisor.state, 'backoff');
    assert.deepEqual(h.events, [
      { type: 'exited', exit: { code: null, signal: 'SIGKILL' }, restart: 1, delayMs: 100 },
    ]);
    assert.equal(h.runs.length, 1, 'no restart before the delay');

    for (const [failed, delayMs] of [
      [1, 200],
      [2, 400],
      [3, 400],
    ] as const) {
      mock.timers.tick(POLICY.maxDelayMs);
      assert.equal(h.supervisor.state, 'starting');
      h.runs.at(-1)?.exit({ code: 1, signal: null }, 'port 8080 is taken');
      await settle();
      assert.deepEqual(h.events.at(-1), {
        type: 'restart-failed',
        failed,
        why: 'port 8080 is taken',
        restart: failed + 1,
        delayMs,
      });
    }
    mock.timers.tick(POLICY.maxDelayMs);
    h.runs.at(-1)?.becomeReady();
    await settle();
    assert.equal(h.supervisor.state, 'running');
    assert.deepEqual(h.events.at(-1), { type: 'restarted', restart: 4, pid: 1004 });
    assert.equal(h.supervisor.restarts, 4);
    assert.equal(h.runs.length, 5);
    assert.equal(h.supervisor.process, h.runs[4]);
  });

  it('starts over at the first delay after a child stayed up long enough', async () => {
    const h = harness();
    const first = await started(h);
    first.exit({ code: 1, signal: null });
    await settle();
    mock.timers.tick(100);
    h.runs[1]?.exit({ code: 1, signal: null });
    await settle();
    const failed = h.events.at(-1);
    assert.ok(failed?.type === 'restart-failed');
    assert.equal(failed.delayMs, 200, 'the second exit in a row waits twice as long');
    mock.timers.tick(200);
    h.runs[2]?.becomeReady();
    await settle();
    h.clock.now += POLICY.resetAfterMs;
    h.runs[2]?.exit({ code: 0, signal: null }); // even exit 0 was not asked for
    await settle();
    assert.deepEqual(h.events.at(-1), {
      type: 'exited',
      exit: { code: 0, signal: null },
      restart: 3,
      delayMs: 100,
    });
  });

  it('retries a restart that cannot be spawned', async () => {
    const h = harness(2);
    const first = await started(h);
    first.exit({ code: 1, signal: null });
    await settle();
    mock.timers.tick(100);
    assert.deepEqual(h.events.at(-1), {
      type: 'restart-failed',
      failed: 1,
      why: 'could not be spawned: spawn EAGAIN',
      restart: 2,
      delayMs: 200,
    });
    assert.equal(h.supervisor.state, 'backoff');
    assert.equal(h.supervisor.process, undefined);
    mock.timers.tick(200);
    h.runs[1]?.becomeReady();
    await settle();
    assert.deepEqual(h.events.at(-1), { type: 'restarted', restart: 2, pid: 1001 });
  });

  it('does not retry a first start that fails', async () => {
    const h = harness();
    const start = h.supervisor.start();
    h.runs[0]?.exit({ code: 1, signal: null }, 'no model at /nowhere');
    await assert.rejects(start, /no model at \/nowhere/);
    await settle();
    assert.equal(h.supervisor.state, 'failed');
    mock.timers.tick(POLICY.maxDelayMs);
    assert.equal(h.runs.length, 1);
    assert.deepEqual(h.events, []);
  });

  it('stops for good: a pending restart is cancelled, stop() runs once', async () => {
    const h = harness();
    const first = await started(h);
    first.exit({ code: null, signal: 'SIGTERM' });
    await settle();
    assert.equal(h.supervisor.state, 'backoff');
    const stopped = h.supervisor.stop(1000);
    assert.equal(h.supervisor.stop(1000), stopped);
    assert.equal(await stopped, undefined, 'nothing was running');
    assert.equal(h.supervisor.state, 'stopped');
    mock.timers.tick(POLICY.maxDelayMs);
    assert.equal(h.runs.length, 1, 'the pending restart was cancelled');

    const running = harness();
    const run = await started(running);
    assert.deepEqual(await running.supervisor.stop(1000), { code: 0, signal: null });
    await settle();
    assert.equal(run.stopCalls, 1);
    assert.equal(running.supervisor.state, 'stopped');
    assert.deepEqual(running.events, [], 'an asked-for exit is no restart');
  });

  it('restarts nothing once retired, and stop() still stops the running child', async () => {
    const h = harness();
    const first = await started(h);
    first.exit({ code: 1, signal: null });
    await settle();
    mock.timers.tick(100);
    const second = h.runs[1];
    assert.ok(second);
    second.becomeReady();
    await settle();
    h.supervisor.retire();
    assert.equal(h.supervisor.state, 'running', 'a running child is left alone');
    second.exit({ code: null, signal: 'SIGKILL' });
    await settle();
    mock.timers.tick(POLICY.maxDelayMs);
    assert.equal(h.supervisor.state, 'stopped');
    assert.equal(h.runs.length, 2, 'no restart after retire()');
    assert.equal(await h.supervisor.stop(1000), undefined);

    const pending = harness();
    const run = await started(pending);
    run.exit({ code: 1, signal: null });
    await settle();
    pending.supervisor.retire();
    mock.timers.tick(POLICY.maxDelayMs);
    assert.equal(pending.runs.length, 1, 'a pending restart is cancelled');
    assert.equal(pending.supervisor.state, 'stopped');
  });

  it('describes each event in one line', () => {
    assert.equal(
      describeEvent('replica replica-1', {
        type: 'exited',
        exit: { code: null, signal: 'SIGKILL' },
        restart: 2,
        delayMs: 1000,
      }),
      'replica replica-1 exited unexpectedly (signal SIGKILL); restart 2 in 1000 ms',
    );
    assert.match(
      describeEvent('bridge bridge-1', {
        type: 'restart-failed',
        failed: 1,
        why: 'port taken',
        restart: 2,
        delayMs: 1000,
      }),
      /^bridge bridge-1 restart 1 failed: port taken; restart 2 in 1000 ms/,
    );
  });
});
