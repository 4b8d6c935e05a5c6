/**
 * Idle keep-alive connections closed without losing a request that already arrived. node:http
 * closes a connection when its keep-alive timer fires; timers run before the event loop reads
 * sockets, so in a process lagging behind its timers (a bridge under overload: chaos `overload`,
 * loop delay over a second) a request the client sent while the connection was still open, but
 * not yet read, dies with the socket: closing a socket with unread data makes the kernel send a
 * reset, and the client sees ECONNRESET for a request it sent in time. Here the verdict waits one
 * turn of the loop (setImmediate runs after the poll phase), so data already received is read
 * first; a connection that read nothing new is closed as before.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Takes over node's idle-timeout verdict on `server`'s sockets (node destroys a socket at its
 * timeout only while nobody listens to the server's `timeout` event). The bridge sets no other
 * socket timeout than keep-alive's, so every `timeout` is an idle keep-alive connection.
 */
export function closeIdleAfterPendingReads(server: Server): void {
  server.on('timeout', (socket: Socket) => {
    const read = socket.bytesRead;
    setImmediate(() => {
      // Bytes read since the timer fired: a request began, and node cleared the keep-alive timer.
      if (socket.destroyed || socket.bytesRead !== read) return;
      socket.destroy();
    });
  });
}
