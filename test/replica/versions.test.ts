/**
 * The replica's version set on fake engines: a retired version is released once idle and past
 * its grace period, also when its release timer fires before the grace has passed by
 * `Date.now()` (libuv's loop time lags after a busy turn). The chaos hot-swap scenario found a
 * replica that kept its retired version loaded for good that way.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EngineStats, EngineStream, ServingEngine } from '../../src/engine/types.ts';
import type { ModelInfo } from '../../src/engine/model-info.ts';
import { VersionedEngine, type LoadedVersion } from '../../src/replica/versions.ts';

const GRACE_MS = 50;
/** How far behind the timer's clock `Date.now()` reads in the early-timer case. */
const LAG_MS = 200;

const idle: EngineStats = {
  queueDepth: 0,
  activeSequences: 0,
  maxBatchSize: 1,
  tokenBudget: 1,
  freeTokenBudget: 1,
  progress: 0,
  busySince: null,
  stepStartedAt: null,
  stepExpectedMs: 0,
  stepTokens: 0,
};

/** An engine of `version` whose streams end when `finish` is called; counts stops. */
function fakeEngine(version: string): ServingEngine & { stopped: number; finish(): void } {
  let finish = (): void => {};
  const engine = {
    info: { id: 'm', version } as ModelInfo,
    device: 'cpu',
    maxQueue: 1,
    failed: new Promise<Error>(() => {}),
    stopped: 0,
    finish: () => finish(),
    stream(): EngineStream {
      const end = new Promise<void>((resolve) => (finish = resolve));
      return { end } as unknown as EngineStream;
    },
    generate: () => Promise.reject(new Error('not used')),
    stats: () => idle,
    injectFault: () => {},
    stop: (): Promise<void> => {
      engine.stopped++;
      return Promise.resolve();
    },
  };
  return engine;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('VersionedEngine release', () => {
  it('releases an idle retired version after its grace, and one whose last request ends later', async () => {
    const v1 = fakeEngine('1');
    const set = new VersionedEngine(v1, 'd1', GRACE_MS);
    const released: LoadedVersion[] = [];
    set.hooks = { onReleased: (v) => released.push(v) };
    set.stream({ prompt: 'p' });
    set.swap(fakeEngine('2'), 'd2');
    await sleep(GRACE_MS * 3);
    assert.equal(v1.stopped, 0, 'released while a request still ran on it');
    v1.finish();
    await sleep(10);
    assert.equal(v1.stopped, 1);
    assert.deepEqual(
      released.map((v) => v.engine.info.version),
      ['1'],
    );
    assert.deepEqual(set.retiring, []);
  });

  it('releases an idle retired version whose timer fired before its grace passed by Date.now()', async (t) => {
    const v1 = fakeEngine('1');
    const set = new VersionedEngine(v1, 'd1', GRACE_MS);
    // Its only request ends inside the grace period: no later end will look again.
    set.stream({ prompt: 'p' });
    set.swap(fakeEngine('2'), 'd2');
    v1.finish();
    // The wall clock reads LAG_MS behind the timer's clock: the timer fires "early".
    const realNow = Date.now.bind(Date);
    t.mock.method(Date, 'now', () => realNow() - LAG_MS);
    await sleep(GRACE_MS + 10);
    t.mock.restoreAll();
    await sleep(LAG_MS + GRACE_MS);
    assert.equal(v1.stopped, 1, 'the retired version stayed loaded');
    assert.deepEqual(set.retiring, []);
  });
});
