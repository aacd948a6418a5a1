/**
 * The HTTP side of a graceful shutdown. From the moment the instance is told to stop, /readyz
 * fails (the load balancer takes the instance out of rotation) while every request is still
 * served; each answer then carries `Connection: close`, so that keep-alive clients open their
 * next connection to another instance instead of reusing one that is about to be closed.
 * It also counts the requests in flight, so that shutdown can wait for the last of them.
 */
export class DrainState {
  private since: number | null = null;
  private inFlight = 0;
  private waiters: (() => void)[] = [];

  get draining(): boolean {
    return this.since !== null;
  }

  /** When draining began (ms), or null. */
  get startedAt(): number | null {
    return this.since;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Starts draining; true only for the first call (a second signal changes nothing). */
  begin(now = Date.now()): boolean {
    if (this.since !== null) return false;
    this.since = now;
    return true;
  }

  /** Resolves once no request is in flight (at once if none is). */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** Wraps the server's fetch handler: counts requests in flight and marks answers given while draining. */
  serve<A extends unknown[]>(fetch: (req: Request, ...rest: A) => Response | Promise<Response>) {
    return async (req: Request, ...rest: A): Promise<Response> => {
      this.inFlight++;
      try {
        const res = await fetch(req, ...rest);
        return this.draining ? withConnectionClose(res) : res;
      } finally {
        if (--this.inFlight === 0) for (const w of this.waiters.splice(0)) w();
      }
    };
  }
}

function withConnectionClose(res: Response): Response {
  try {
    res.headers.set('Connection', 'close');
    return res;
  } catch {
    // Immutable headers (a Response made by fetch() or Response.error()): copy it.
    const copy = new Response(res.body, res);
    copy.headers.set('Connection', 'close');
    return copy;
  }
}
