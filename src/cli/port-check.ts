/**
 * The HTTP port, checked before anything slow starts: `switchyard bridge` would otherwise find a
 * taken port only after connecting to NATS, and `up` only after loading every model. The check
 * is a bind and a close, so a port taken in between still fails later, at the real listen; both
 * failures read the same through {@link listenFailure}.
 */
import { createServer } from 'node:net';
import { StartupError } from '../errors/errors.ts';
import { describeSource, type OptionSource } from '../config/option.ts';

/** Where the host and port came from, for the message. */
export interface ListenSources {
  host?: OptionSource;
  port?: OptionSource;
}

function from(source: OptionSource | undefined, what: string): string {
  return source === undefined || source.kind === 'default'
    ? ` (the default ${what})`
    : ` (from ${describeSource(source)})`;
}

/** A one-line start-up error for a failed listen, by its errno code; the flags to change are named. */
export function listenFailure(
  err: NodeJS.ErrnoException,
  host: string,
  port: number,
  sources: ListenSources = {},
): StartupError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new StartupError(
        'dependency',
        `port ${port} on ${host} is already in use${from(sources.port, 'port')}: stop what holds it, ` +
          'or choose another with --port (--port 0 picks a free one)',
        { cause: err },
      );
    case 'EACCES':
      return new StartupError(
        'dependency',
        `no permission to listen on ${host}:${port}${from(sources.port, 'port')}: ports below 1024 need ` +
          'privileges; choose another with --port',
        { cause: err },
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new StartupError(
        'config',
        `cannot listen on ${host}${from(sources.host, 'host')}: it is not an address of this machine; ` +
          'give --host 127.0.0.1, 0.0.0.0 or one of its addresses',
        { cause: err },
      );
    default:
      return new StartupError('dependency', `cannot listen on ${host}:${port}: ${err.message}`, {
        cause: err,
      });
  }
}

/** Binds `host:port` and lets go at once; throws {@link listenFailure} when it cannot. Port 0 always binds. */
export function checkPortFree(host: string, port: number, sources: ListenSources = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', (err: NodeJS.ErrnoException) => reject(listenFailure(err, host, port, sources)));
    srv.listen({ host, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}
