/** The `collector` subcommand's options: one line each, from which flags, env, file keys, help and docs come. */
import type { ConnectionOptions } from '../cluster/connection.ts';
import {
  DEFAULT_CAPTURE_MAX_AGE_MS,
  DEFAULT_CAPTURE_MAX_BYTES,
  DEFAULT_CAPTURE_REPLICAS,
} from '../capture/streams.ts';
import {
  DEFAULT_COLLECTOR_ACK_WAIT_MS,
  DEFAULT_COLLECTOR_MAX_IN_FLIGHT,
  type CollectorOptions,
} from '../collector/options.ts';
import {
  DEFAULT_SERVERS_TEXT,
  idDef,
  logLevelDef,
  natsDefs,
  type CommonSettings,
  defBuilders,
} from './common-options.ts';
import type { OptionDef, OptionTable } from './option.ts';

/** A collector's settings as resolved: its options plus what only the CLI uses. */
export interface CollectorSettings extends CollectorOptions, CommonSettings {
  nats: ConnectionOptions;
}

const { int, ms, metricsPort, metricsHost } = defBuilders('collector');

/** The stream options, shared with `up` (which hands them to its collector). */
export function captureStreamDefs(builders: ReturnType<typeof defBuilders>): OptionDef[] {
  return [
    builders.int(
      'streams.replicas',
      'capture-replicas',
      DEFAULT_CAPTURE_REPLICAS,
      'Replicas of the capture streams and the records bucket (up to the NATS cluster’s JetStream nodes).',
    ),
    builders.ms(
      'streams.maxAgeMs',
      'capture-max-age-ms',
      DEFAULT_CAPTURE_MAX_AGE_MS,
      'Retention of completion events, feedback and records by age (oldest discarded first).',
    ),
    builders.int(
      'streams.maxBytes',
      'capture-max-bytes',
      DEFAULT_CAPTURE_MAX_BYTES,
      'Retention of the completions stream by size (feedback gets a tenth); oldest discarded first.',
    ),
  ];
}

const defs: OptionDef[] = [
  {
    ...idDef('collector'),
    doc: "Unique collector id; it names the collector's logs, inbox and NATS connection.",
  },
  ...captureStreamDefs(defBuilders('collector')),
  int(
    'maxInFlight',
    'max-in-flight',
    DEFAULT_COLLECTOR_MAX_IN_FLIGHT,
    'Stream messages this collector merges at once (its bounded in-flight).',
  ),
  ms(
    'ackWaitMs',
    'ack-wait-ms',
    DEFAULT_COLLECTOR_ACK_WAIT_MS,
    'How long JetStream waits for a message’s ack before redelivering it (to any collector).',
  ),
  metricsPort(),
  metricsHost(),
  logLevelDef(),
  ...natsDefs(DEFAULT_SERVERS_TEXT),
];

/** Options of `switchyard collector`. */
export const COLLECTOR_TABLE: OptionTable = {
  section: 'collector',
  summary:
    'Consume completion events and feedback from JetStream into durable records; answer dataset stats and exports.',
  defs,
};
