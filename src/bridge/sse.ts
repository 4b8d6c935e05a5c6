/**
 * Server-Sent Events as OpenAI streams them: `data: <json>\n\n` per event, `data: [DONE]\n\n` at
 * the end. The status line is held back until the first event, so an error that happens before
 * anything was generated (busy, unavailable, unknown model) still gets its own HTTP status;
 * after that, an error can only be an event, and the stream then closes without `[DONE]`.
 * Writes respect back-pressure: a slow reader holds back its own generation, nothing else.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';

/** The last event of a successful stream. */
export const SSE_DONE = '[DONE]';

/** Headers of an event stream; `x-accel-buffering: no` stops nginx-style proxies from buffering it. */
const SSE_HEADERS: Readonly<Record<string, string>> = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

/** One event stream on one response. */
export class SseWriter {
  private readonly res: ServerResponse;
  private readonly headers: Record<string, string>;
  private opened = false;

  /** `headers` go out with the status line (request id, cache status). */
  constructor(res: ServerResponse, headers: Record<string, string> = {}) {
    this.res = res;
    this.headers = headers;
  }

  /** True once the status line went out: errors must be events from now on. */
  get started(): boolean {
    return this.opened;
  }

  /** Adds a header while the status line is still held back. */
  setHeader(name: string, value: string): void {
    if (!this.opened) this.headers[name] = value;
  }

  /** Writes one event; resolves when the socket can take more (or the client is gone). */
  async send(data: unknown): Promise<void> {
    if (!this.write(`data: ${JSON.stringify(data)}\n\n`)) await this.drained();
  }

  /** Ends a successful stream with `[DONE]`. */
  done(): void {
    this.write(`data: ${SSE_DONE}\n\n`);
    this.res.end();
  }

  /** Ends the stream with an error event (the status line has gone out already). */
  fail(body: unknown): void {
    this.write(`data: ${JSON.stringify(body)}\n\n`);
    this.res.end();
  }

  private write(text: string): boolean {
    if (this.res.destroyed || this.res.writableEnded) return true;
    if (!this.opened) {
      this.opened = true;
      this.res.writeHead(200, { ...SSE_HEADERS, ...this.headers });
    }
    return this.res.write(text);
  }

  private async drained(): Promise<void> {
    if (this.res.destroyed) return;
    const ac = new AbortController();
    await Promise.race([
      once(this.res, 'drain', { signal: ac.signal }),
      once(this.res, 'close', { signal: ac.signal }),
    ]).catch(() => undefined);
    ac.abort();
  }
}
