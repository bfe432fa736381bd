/**
 * Faults that a test injects on purpose (a worker killed, a disk error, a full queue) make the
 * code log warnings and errors, which in the test log look like real failures. `expectLogs` holds
 * back the lines a test expects, by message, and hands them to the test to assert on; every other
 * line at warn and above is printed as usual, so a real one still stands out.
 */
import { logger } from '../../src/util/logger';

type Level = 'warn' | 'error' | 'fatal';
const LEVELS: readonly Level[] = ['warn', 'error', 'fatal'];

export interface ExpectedLogs {
  /** The messages held back so far, in order. */
  readonly held: string[];
  /** Puts the logger back as it was. */
  restore(): void;
}

/** From now until `restore()`: lines whose message matches one of `expected` are held, not printed. */
export function expectLogs(expected: readonly RegExp[]): ExpectedLogs {
  const held: string[] = [];
  const spies = LEVELS.map((level) => {
    const original = logger[level].bind(logger) as (...args: unknown[]) => void;
    return jest.spyOn(logger, level).mockImplementation(((...args: unknown[]) => {
      const message = typeof args[0] === 'string' ? args[0] : typeof args[1] === 'string' ? args[1] : '';
      if (expected.some((pattern) => pattern.test(message))) held.push(message);
      else original(...args);
    }) as never);
  });
  return { held, restore: () => spies.forEach((s) => s.mockRestore()) };
}
