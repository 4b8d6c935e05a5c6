/**
 * The spans of one request at its router: a SERVER span for the whole route (a child of the
 * client's send span, through the W3C headers) and one CLIENT span per attempt, injected into
 * that attempt's headers so the replica's span is its child. Each failover is an event on the
 * route span that names the replica given up on and why.
 */
import type { Context, Span } from '@opentelemetry/api';
import type { MsgHdrs } from '@nats-io/nats-core';
import type { GenerateRequest } from '../cluster/messages/generate.ts';
import {
  GENERATE_SUBJECT,
  REPLICA_GENERATE_TEMPLATE,
  ROUTER_QUEUE_GROUP,
  replicaGenerateSubject,
} from '../cluster/subjects.ts';
import { GEN_AI_ATTRS, SPAN_NAMES, SWITCHYARD_ATTRS, SWITCHYARD_EVENTS } from '../telemetry/attributes.ts';
import { startReceiveSpan, startSendSpan } from '../telemetry/propagation.ts';

/** The route span of one request, and how its attempts hang off it. */
export interface RouteTrace {
  readonly span: Span;
  readonly context: Context;
  /** Request attributes known once the body is decoded. */
  describe(req: GenerateRequest, requestId: string): void;
  /** Starts attempt `number`'s span on `replicaId` and writes its context into `headers`. */
  attempt(number: number, replicaId: string, headers: MsgHdrs): Span;
  /** Records that the running attempt on `replicaId` was abandoned. */
  failover(replicaId: string, attempt: number, reason: string, deliveredTokens: number): void;
}

/** Starts the route span of a request that arrived on the front door. */
export function startRouteTrace(
  headers: MsgHdrs | undefined,
  routerId: string,
  bodySize: number,
): RouteTrace {
  const { span, context } = startReceiveSpan(headers, {
    name: SPAN_NAMES.route,
    subject: GENERATE_SUBJECT,
    queueGroup: ROUTER_QUEUE_GROUP,
    bodySize,
    attributes: { [SWITCHYARD_ATTRS.routerId]: routerId },
  });
  return {
    span,
    context,
    describe(req, requestId) {
      span.setAttributes({
        [GEN_AI_ATTRS.requestModel]: req.model,
        [SWITCHYARD_ATTRS.requestId]: requestId,
        ...(req.maxTokens === undefined ? {} : { [GEN_AI_ATTRS.requestMaxTokens]: req.maxTokens }),
      });
    },
    attempt(number, replicaId, attemptHeaders) {
      return startSendSpan(
        attemptHeaders,
        {
          subject: replicaGenerateSubject(replicaId),
          subjectTemplate: REPLICA_GENERATE_TEMPLATE,
          attributes: { [SWITCHYARD_ATTRS.attempt]: number, [SWITCHYARD_ATTRS.replicaId]: replicaId },
        },
        context,
      ).span;
    },
    failover(replicaId, attempt, reason, deliveredTokens) {
      span.addEvent(SWITCHYARD_EVENTS.failover, {
        [SWITCHYARD_ATTRS.replicaId]: replicaId,
        [SWITCHYARD_ATTRS.attempt]: attempt,
        [SWITCHYARD_ATTRS.failoverReason]: reason,
        [SWITCHYARD_ATTRS.resumedTokens]: deliveredTokens,
      });
    },
  };
}
