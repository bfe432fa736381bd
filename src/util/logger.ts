import pino from 'pino';

/**
 * Structured logs (JSON lines) on stderr, so that command output on stdout stays machine-readable.
 * LOG_LEVEL sets the level (default info; 'silent' turns logs off).
 */
export const logger = pino(
  { name: 'advsieve', level: process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid } },
  pino.destination(2),
);
