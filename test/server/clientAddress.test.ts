/** The address a client is counted by (src/util/clientAddress.ts): IPv4 as it is, IPv6 by its /64. */
import { clientAddress } from '../../src/util/clientAddress';

test('IPv4, mapped or not, is the address itself', () => {
  expect(clientAddress('10.1.2.3')).toBe('10.1.2.3');
  expect(clientAddress('::ffff:10.1.2.3')).toBe('10.1.2.3');
  expect(clientAddress('::FFFF:127.0.0.1')).toBe('127.0.0.1');
  expect(clientAddress(undefined)).toBe('');
});

test('IPv6 counts by its /64: every address of one prefix is one client, however it is written', () => {
  const prefix = '2001:db8:1:2::/64';
  for (const a of [
    '2001:db8:1:2:3:4:5:6',
    '2001:db8:1:2::1',
    '2001:DB8:1:2:ffff::9',
    '2001:0db8:0001:0002::',
    '2001:db8:1:2::',
    '2001:db8:1:2:3:4:192.0.2.33',
  ])
    expect(clientAddress(a)).toBe(prefix);
  expect(clientAddress('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
  expect(clientAddress('2001:db8::1')).toBe('2001:db8:0:0::/64');
  expect(clientAddress('::1')).toBe('0:0:0:0::/64');
  expect(clientAddress('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  expect(clientAddress('64:ff9b::192.0.2.33')).toBe('64:ff9b:0:0::/64');
});
