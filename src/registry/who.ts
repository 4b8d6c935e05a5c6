/** Who is acting, for `pushed_by` and alias moves when nobody says: `user@host`. */
import { hostname, userInfo } from 'node:os';

/** `user@host` of this process (the user falls back to `$USER`, then `unknown`). */
export function defaultActor(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env['USER'] ?? 'unknown';
  }
  return `${user}@${hostname()}`;
}
