/**
 * The credentials `switchyard up` makes for its own nats-server: one nkey per actor (its role's
 * permissions, its id in its subjects), one for client programs and one for operator commands.
 * Seeds are written to a private directory (0700, files 0600) as the `--nats-nkey-seed-file`
 * option reads them; the server's config holds only the public keys. A seed is random per `up`
 * and dies with its server, so nothing has to be rotated or revoked.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nkeys } from '@nats-io/nats-core';
import {
  rolePermissions,
  type NatsUser,
  type PermissionContext,
  type PermissionRole,
} from '../cluster/permissions.ts';

/** One identity: who it is, where its seed lies, and what the server lets it do. */
export interface Credential {
  readonly role: PermissionRole;
  readonly id: string;
  /** The nkey seed file (0600). */
  readonly seedFile: string;
  readonly user: NatsUser;
}

/** Every identity of one `up`, and the directory holding their seeds. */
export class CredentialStore {
  readonly dir: string;
  private readonly ctx: PermissionContext;
  private readonly byName = new Map<string, Credential>();

  /** Creates `dir` (0700); credentials are added with {@link issue}. */
  constructor(dir: string, ctx: PermissionContext) {
    this.dir = dir;
    this.ctx = ctx;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** A fresh nkey for `role`/`id`, its seed written to `<dir>/<role>-<id>.nk` (or `<role>.nk`). */
  issue(role: PermissionRole, id: string): Credential {
    const name = role === id ? role : `${role}-${id}`;
    const existing = this.byName.get(name);
    if (existing !== undefined) return existing;
    const kp = nkeys.createUser();
    const seedFile = join(this.dir, `${name}.nk`);
    writeFileSync(seedFile, `${new TextDecoder().decode(kp.getSeed())}\n`, { mode: 0o600 });
    const credential: Credential = {
      role,
      id,
      seedFile,
      user: { nkey: kp.getPublicKey(), permissions: rolePermissions(role, id, this.ctx) },
    };
    this.byName.set(name, credential);
    return credential;
  }

  /** Every user, for the server's `authorization` block. */
  get users(): NatsUser[] {
    return [...this.byName.values()].map((c) => c.user);
  }
}
