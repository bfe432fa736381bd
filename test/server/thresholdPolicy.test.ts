/** Item 7 of issue 11: the operator, not the client, sets how loose the screening may be. */
import type { Principal } from '../../src/request/context';
import { targetFprFor, thresholdPolicy } from '../../src/server/thresholdPolicy';

const policy = thresholdPolicy({ operatorFpr: 0.05, maxFpr: 0.5, holdoutSize: 1500, openMayLoosen: false });
const key = (...scopes: Principal['scopes'] extends ReadonlySet<infer S> ? S[] : never): Principal => ({
  keyId: 'k',
  scopes: new Set(scopes),
});
const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return (err as { extensions: { code: string } }).extensions.code;
  }
  return 'accepted';
};

test('no targetFpr: the operator rate', () => {
  expect(targetFprFor(policy, key('screen'), undefined)).toBe(0.05);
  expect(targetFprFor(policy, undefined, null)).toBe(0.05);
});

test('stricter (a higher rate, more flags) is anyone’s; looser only with the policy scope', () => {
  expect(targetFprFor(policy, key('screen'), 0.2)).toBe(0.2);
  expect(targetFprFor(policy, key('screen'), 0.5)).toBe(0.5);
  expect(codeOf(() => targetFprFor(policy, key('screen'), 0.049))).toBe('BAD_USER_INPUT');
  expect(targetFprFor(policy, key('screen', 'policy'), 0.001)).toBe(0.001);
  expect(codeOf(() => targetFprFor(policy, key('admin', 'attack', 'oracle'), 0.001))).toBe('BAD_USER_INPUT');
});

test.each([Number.NaN, Infinity, -Infinity, 0, -1, 5e-324, 1e-6, 1 / 1501, 0.51, 1, 2])(
  'targetFpr %p is refused even with the policy scope',
  (fpr) => {
    expect(codeOf(() => targetFprFor(policy, key('policy'), fpr))).toBe('BAD_USER_INPUT');
  },
);

test('the hold-out’s resolution is the policy key’s floor', () => {
  expect(targetFprFor(policy, key('policy'), 1 / 1500)).toBe(1 / 1500);
});

test('open API: the floor holds unless the operator allows looser rates', () => {
  expect(codeOf(() => targetFprFor(policy, undefined, 0.01))).toBe('BAD_USER_INPUT');
  const open = thresholdPolicy({ operatorFpr: 0.05, maxFpr: 0.5, holdoutSize: 1500, openMayLoosen: true });
  expect(targetFprFor(open, undefined, 0.01)).toBe(0.01);
  expect(codeOf(() => targetFprFor(open, undefined, 1e-6))).toBe('BAD_USER_INPUT');
  // A key without `policy` is not loosened by the open-API switch.
  expect(codeOf(() => targetFprFor(open, key('screen'), 0.01))).toBe('BAD_USER_INPUT');
});

test('the operator’s own rate is allowed even above the configured maximum', () => {
  const p = thresholdPolicy({ operatorFpr: 0.6, maxFpr: 0.5, holdoutSize: 1500, openMayLoosen: false });
  expect(targetFprFor(p, undefined, 0.6)).toBe(0.6);
});
