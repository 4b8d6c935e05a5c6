/**
 * The hot swap command an operator sends one replica, and its answer. The replica answers once
 * the swap is done (new requests get the new version) or has failed (the old one serves on).
 */
import { errorFromCode, isErrorCode, type SwitchyardError } from '../../errors/errors.ts';
import { encodeObject, parseObject, readPattern, readString } from '../../validation/fields.ts';
import { MODEL_VERSION_PATTERN } from '../subjects.ts';

/** Longest model reference a swap names (a folder path or a registry URL). */
export const SWAP_MODEL_MAX_LENGTH = 4_096;

/** Swap to this model: a folder on the replica's host, or `registry://<id>@<version|alias>`. */
export interface SwapCommand {
  model: string;
}

/** What a swap did. */
export interface SwapDone {
  version: string;
  digest: string;
  /** False when the replica already served that version. */
  swapped: boolean;
}

/** A swap's answer: done, or the typed error it failed with. */
export type SwapReply = SwapDone | { error: SwitchyardError };

/** The one decoder of swap commands. */
export function decodeSwapCommand(data: Uint8Array | string): SwapCommand {
  const o = parseObject(data, 'swap command');
  return { model: readString('model', o.model, { minLength: 1, maxLength: SWAP_MODEL_MAX_LENGTH }) };
}

/** Serialises a swap command. */
export function encodeSwapCommand(cmd: SwapCommand): Uint8Array {
  return encodeObject({ model: cmd.model });
}

/** Serialises a swap's answer. */
export function encodeSwapReply(reply: SwapReply): Uint8Array {
  if ('error' in reply)
    return encodeObject({ error: { code: reply.error.code, message: reply.error.message } });
  return encodeObject({ version: reply.version, digest: reply.digest, swapped: reply.swapped });
}

/** The one decoder of swap answers; a failed swap comes back as its typed error. */
export function decodeSwapReply(data: Uint8Array | string): SwapReply {
  const o = parseObject(data, 'swap reply');
  if (typeof o.error === 'object' && o.error !== null) {
    const e = o.error as Record<string, unknown>;
    const code = isErrorCode(e.code) ? e.code : 'internal';
    return { error: errorFromCode(code, typeof e.message === 'string' ? e.message : 'swap failed') };
  }
  return {
    version: readPattern('version', o.version, MODEL_VERSION_PATTERN, '[A-Za-z0-9._-]{1,64}'),
    // The echo engine (router benchmarks) has no file to digest: ''.
    digest: o.digest === '' ? '' : readPattern('digest', o.digest, /^[0-9a-f]{64}$/, '64 hex digits'),
    swapped: o.swapped === true,
  };
}
