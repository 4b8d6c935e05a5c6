/**
 * The web page's files (`src/bridge/static/`): `GET /` is `index.html`; `GET /<path>` and
 * `GET /static/<path>` are files under the folder. Paths are checked segment by segment (no
 * `..`, no dot files, a small alphabet), so nothing outside the folder can be named; only known
 * file types are served.
 */
import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import type { RequestContext } from './context.ts';
import { HttpInputError } from './http-errors.ts';

/** Content types of the files the page may consist of. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};
/**
 * The page's Content-Security-Policy: only its own files (the icon is a `data:` URL), no inline
 * scripts, and no framing by any site (`frame-ancestors 'none'`: no clickjacking of the page's
 * controls). `X-Frame-Options` says the same to browsers that predate CSP level 2.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; " +
  "form-action 'self'; frame-ancestors 'none'";
/** A path segment that can only name something inside the folder. */
const SAFE_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
/** Optional URL prefix of the page's files. */
const STATIC_PREFIX = '/static/';
/** Deepest path served. */
const MAX_SEGMENTS = 4;

/** The file a URL path names inside `dir`, or undefined when it cannot name one. */
export function staticFileOf(dir: string, path: string): string | undefined {
  if (path === '/') return join(dir, 'index.html');
  const rest = path.startsWith(STATIC_PREFIX) ? path.slice(STATIC_PREFIX.length) : path.slice(1);
  const segments = rest.split('/');
  if (segments.length > MAX_SEGMENTS || !segments.every((s) => SAFE_SEGMENT.test(s) && !s.includes('..'))) {
    return undefined;
  }
  if (CONTENT_TYPES[extname(rest)] === undefined) return undefined;
  return join(dir, ...segments);
}

/** Serves the file or throws a 404 {@link HttpInputError}. */
export async function serveStatic(dir: string, path: string, call: RequestContext): Promise<number> {
  const notFound = (): HttpInputError =>
    new HttpInputError(404, `no route ${call.req.method} ${path.slice(0, 128)}`);
  const file = staticFileOf(dir, path);
  if (file === undefined) throw notFound();
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch {
    throw notFound();
  }
  call.res.writeHead(200, {
    ...call.headers,
    'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': data.length,
    'cache-control': 'no-cache',
    'x-content-type-options': 'nosniff',
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
  });
  call.res.end(data);
  return 200;
}
