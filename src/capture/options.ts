/**
 * What a router captures: on by default, every model, every request, with text, redacted. The
 * sample decision hashes the request id, so every router that sees one request (a resend after a
 * draining router) decides the same way and a sampled request is captured whole or not at all.
 */
import { createHash } from 'node:crypto';
import { StartupError } from '../errors/errors.ts';

/** Events a router holds while JetStream is slow or gone; past it the oldest are dropped and counted. */
export const DEFAULT_CAPTURE_BUFFER_EVENTS = 10_000;
/** Bytes (encoded) a router holds; past it the oldest are dropped and counted. */
export const DEFAULT_CAPTURE_BUFFER_BYTES = 64 * 1024 * 1024;
/** Publishes awaiting a JetStream ack at once. */
export const DEFAULT_CAPTURE_MAX_IN_FLIGHT = 64;
/** How long one publish waits for JetStream's ack before it is retried. */
export const DEFAULT_CAPTURE_ACK_TIMEOUT_MS = 5_000;

/** Capture settings of a router (`--capture*`). */
export interface CaptureOptions {
  /** @default true */
  enabled?: boolean;
  /** Models to capture; empty captures every model. @default [] */
  models?: readonly string[];
  /** Fraction of requests captured, in [0, 1], decided by request id (text from a flag: `0.25`). @default 1 */
  sample?: number | string;
  /** Capture prompts, outputs and token ids; false keeps counts, timings and metadata only. @default true */
  text?: boolean;
  /** Replace e-mail addresses, card numbers, secrets… before an event leaves the router. @default true */
  redact?: boolean;
  /** @default DEFAULT_CAPTURE_BUFFER_EVENTS */
  bufferEvents?: number;
  /** @default DEFAULT_CAPTURE_BUFFER_BYTES */
  bufferBytes?: number;
  /** @default DEFAULT_CAPTURE_ACK_TIMEOUT_MS */
  ackTimeoutMs?: number;
}

/** Capture settings with defaults filled in. */
export interface CompiledCaptureOptions {
  enabled: boolean;
  models: ReadonlySet<string>;
  sample: number;
  text: boolean;
  redact: boolean;
  bufferEvents: number;
  bufferBytes: number;
  ackTimeoutMs: number;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1) {
    throw new StartupError('config', `${name} must be an integer >= 1, got ${String(value)}`);
  }
  return v;
}

/** Fills capture defaults; rejects a sample outside [0, 1] naming the option. */
export function compileCaptureOptions(opts: CaptureOptions = {}): CompiledCaptureOptions {
  const sample = Number(opts.sample ?? 1);
  if (!Number.isFinite(sample) || sample < 0 || sample > 1) {
    throw new StartupError('config', `captureSample must be a number in [0, 1], got ${String(opts.sample)}`);
  }
  return {
    enabled: opts.enabled ?? true,
    models: new Set(opts.models ?? []),
    sample,
    text: opts.text ?? true,
    redact: opts.redact ?? true,
    bufferEvents: positive('captureBufferEvents', opts.bufferEvents, DEFAULT_CAPTURE_BUFFER_EVENTS),
    bufferBytes: positive('captureBufferBytes', opts.bufferBytes, DEFAULT_CAPTURE_BUFFER_BYTES),
    ackTimeoutMs: positive('captureAckTimeoutMs', opts.ackTimeoutMs, DEFAULT_CAPTURE_ACK_TIMEOUT_MS),
  };
}

/** Whether a request of `model` with id `requestId` is captured: the same answer at every router. */
export function isCaptured(options: CompiledCaptureOptions, model: string, requestId: string): boolean {
  if (!options.enabled) return false;
  if (options.models.size > 0 && !options.models.has(model)) return false;
  if (options.sample >= 1) return true;
  if (options.sample <= 0) return false;
  return sampleFraction(requestId) < options.sample;
}

/** A request id's place in [0, 1): the first 48 bits of its SHA-256. */
export function sampleFraction(requestId: string): number {
  const digest = createHash('sha256').update(requestId, 'utf8').digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}
