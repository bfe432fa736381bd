import { isIPv6 } from 'net';

/**
 * The address a client is counted by, for the connection limits and the admission shares by
 * address: an IPv4 address as it is (IPv4-mapped IPv6 too), an IPv6 address by its /64 prefix. A
 * host or subscriber is given at least a /64, and each of its 2^64 addresses would otherwise count
 * as a client of its own.
 */
export function clientAddress(remote: string | undefined): string {
  if (!remote) return '';
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(remote);
  if (mapped) return mapped[1];
  if (!isIPv6(remote)) return remote;
  const [address] = remote.split('%'); // a zone (fe80::1%eth0)
  const [head, tail] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  // A dotted IPv4 ending (::ffff:1.2.3.4, 64:ff9b::1.2.3.4) fills the last two groups.
  const dotted = address.includes('.') ? 1 : 0;
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array(8 - headGroups.length - tailGroups.length - dotted).fill('0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
