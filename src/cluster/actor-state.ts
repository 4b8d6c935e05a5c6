/**
 * The one lifecycle every actor (replica, router, bridge) goes through. Only `running` actors
 * take new work; `draining` ones finish theirs; `stopped` is an end on request, `failed` an end
 * on its own (its engine or its connection died), which a supervisor restarts.
 */
import type { HeartbeatState } from './messages/heartbeat.ts';

/** Lifecycle of an actor. */
export type ActorState = 'starting' | 'running' | 'draining' | 'stopped' | 'failed';

/**
 * The state an actor announces in heartbeats. The wire keeps its own names (docs/protocol.md):
 * `running` is announced as `ready`, and a failed actor as `stopped` (peers drop it at once).
 */
export function heartbeatStateOf(state: ActorState): HeartbeatState {
  switch (state) {
    case 'running':
      return 'ready';
    case 'failed':
      return 'stopped';
    default:
      return state;
  }
}
