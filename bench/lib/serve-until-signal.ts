/**
 * Serves a bench server's routes on PORT (3100) / HOST (127.0.0.1) until SIGTERM or SIGINT, then
 * closes it and whatever else it holds (`close`) and exits.
 */
export function serveUntilSignal(fetch: (req: Request) => Response | Promise<Response>, close: () => void): void {
  const server = Bun.serve({ port: Number(process.env.PORT ?? 3100), hostname: process.env.HOST || '127.0.0.1', fetch });
  const stop = () => {
    void server.stop();
    close();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
