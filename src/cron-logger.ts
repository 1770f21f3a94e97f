/**
 * node-cron logs to the console by default (e.g. "task still running, new execution blocked by
 * overlap prevention!"), which would break our JSON log lines. Route it to pino at debug: a
 * skipped overlapping run is expected behaviour (noOverlap), not news.
 */
import type { Logger } from 'pino';

export function cronLogger(log: Logger) {
  return {
    info: (message: string) => log.debug({ cron: true }, message),
    warn: (message: string) => log.debug({ cron: true }, message),
    error: (message: string | Error, err?: Error) => log.warn({ cron: true, err: err?.message ?? (message instanceof Error ? message.message : undefined) }, String(message)),
    debug: (message: string | Error) => log.trace({ cron: true }, String(message)),
  };
}
