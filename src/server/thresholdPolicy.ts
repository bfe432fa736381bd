/**
 * Who sets the detection threshold: the operator. `screen(options: {targetFpr})` reads every
 * detector's threshold from the clean hold-out scores at the false-positive rate asked for; a
 * *lower* rate means a *higher* threshold and fewer images flagged. A client that could ask for
 * any rate could switch detection off for its own images (at 1e-6, 2 of 10 PGD images were flagged
 * instead of 10), so:
 * - a client may ask for a rate at or above the operator's (ADVSIEVE_TARGET_FPR, else the
 *   calibration's default): a stricter screening, more flags, never fewer;
 * - up to ADVSIEVE_MAX_TARGET_FPR (0.5 by default): beyond, most clean images would be flagged;
 * - below the operator's only with a key holding the `policy` scope — or, with no keys configured,
 *   when the operator allows it (ADVSIEVE_ALLOW_LOOSER_TARGET_FPR=1); never below 1 / (hold-out
 *   size), under which every rate reads the same (highest) threshold and the figure would be a lie;
 * - anything else (non-finite, ≤ 0, ≥ 1, out of the range) is BAD_USER_INPUT naming the range.
 */
import type { Principal } from '../request/context';
import { requestError } from '../request/errors';

export interface ThresholdPolicy {
  /** The operator's rate: the default, and the lowest a client may ask for without `policy`. */
  readonly floor: number;
  /** The highest rate a client may ask for. */
  readonly max: number;
  /** The lowest rate the calibration's hold-out can tell apart: 1 / its size. */
  readonly resolvable: number;
  /** No keys configured: may an anonymous client go below the floor (ADVSIEVE_ALLOW_LOOSER_TARGET_FPR)? */
  readonly openMayLoosen: boolean;
}

export function thresholdPolicy(options: {
  operatorFpr: number;
  maxFpr: number;
  holdoutSize: number;
  openMayLoosen: boolean;
}): ThresholdPolicy {
  const resolvable = 1 / Math.max(1, options.holdoutSize);
  return {
    floor: options.operatorFpr,
    // The operator's own rate is always allowed, even above the configured maximum.
    max: Math.max(options.maxFpr, options.operatorFpr),
    resolvable,
    openMayLoosen: options.openMayLoosen,
  };
}

/** May this caller ask for a rate below the operator's? */
function mayLoosen(policy: ThresholdPolicy, principal: Principal | undefined): boolean {
  return principal === undefined ? policy.openMayLoosen : principal.scopes.has('policy');
}

/** The rate a request's thresholds are read at: the operator's unless the client asked (and may). */
export function targetFprFor(
  policy: ThresholdPolicy,
  principal: Principal | undefined,
  requested: number | null | undefined,
): number {
  if (requested == null) return policy.floor;
  const loosen = mayLoosen(policy, principal);
  const min = loosen ? policy.resolvable : policy.floor;
  if (Number.isFinite(requested) && requested >= min && requested <= policy.max) return requested;
  const range = `[${min}, ${policy.max}]`;
  const why = loosen
    ? ''
    : `: the operator's rate ${policy.floor} is the loosest screening allowed (a lower rate flags fewer images)` +
      (principal === undefined
        ? '; an operator may allow lower ones with ADVSIEVE_ALLOW_LOOSER_TARGET_FPR=1'
        : `; a key with the 'policy' scope may ask down to ${policy.resolvable}`);
  throw requestError('BAD_USER_INPUT', `targetFpr must be in ${range}, got ${requested}${why}`, 400, {
    argumentName: 'targetFpr',
    min,
    max: policy.max,
  });
}
