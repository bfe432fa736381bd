import { InvalidArgumentError } from 'commander';

export function intOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected a non-negative integer, got '${value}'`);
  return n;
}

export function floatOption(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${value}'`);
  return n;
}

export function scheduleOption(value: string): 'exponential' | 'cosine' {
  if (value !== 'exponential' && value !== 'cosine')
    throw new InvalidArgumentError(`expected 'cosine' or 'exponential', got '${value}'`);
  return value;
}

/** A commander parser accepting one of `allowed`. */
export function choiceOption<T extends string>(allowed: readonly T[]): (value: string) => T {
  return (value) => {
    if (!(allowed as readonly string[]).includes(value))
      throw new InvalidArgumentError(`expected one of ${allowed.join(', ')}, got '${value}'`);
    return value as T;
  };
}

/** A comma-separated list of L∞ budgets, each in (0, 1] (pixels are in [0, 1]). */
export function epsilonListOption(value: string): number[] {
  const list = value.split(',').map((s) => Number(s.trim()));
  if (!list.length || !list.every((e) => Number.isFinite(e) && e > 0 && e <= 1))
    throw new InvalidArgumentError(`expected comma-separated budgets in (0, 1], got '${value}'`);
  return list;
}
