/**
 * Bounds the connections one process holds. Without it, connections held open — idle after a
 * request (kept ADVSIEVE_KEEP_ALIVE_TIMEOUT_MS), or stalled in their headers (kept until the
 * headers timeout) — cost nothing to hold for a client and a file descriptor and ~9 KB each to
 * the service: a few processes holding them exhausted its descriptors and new clients' connections
 * failed (`npm run bench:hostile`, scenario connection-flood). Three rules, checked as each
 * connection is accepted:
 * - **per address**: one remote address holds at most `maxPerAddress` connections (0: no cap, for
 *   a balancer whose connections all come from one address); a connection past it is closed at once;
 * - **in all**: past `maxConnections`, a new connection takes the place of the oldest connection
 *   not serving a request of the address holding the most, when that is another address; otherwise
 *   it is closed. So a few addresses cannot take every place from the others, and a request in
 *   flight is never cut;
 * - **under pressure** (¾ of `maxConnections` open): idle connections and those still sending
 *   their headers get short timeouts (1 s idle, 2 s for the headers), until fewer than ½ are open.
 * The count is of the remote address the socket sees, an IPv6 one by its /64 (clientAddress):
 * behind a balancer, the balancer's.
 */
import type * as http from 'http';
import type * as net from 'net';
import { clientAddress } from '../util/clientAddress';
import { logger } from '../util/logger';

export interface ConnectionLimits {
  /** Connections this process holds at most. */
  readonly maxConnections: number;
  /** Connections one remote address holds at most; 0: no cap. */
  readonly maxPerAddress: number;
}

/** The timeouts a connection gets while the process is under pressure (ms). */
export const PRESSURE_KEEP_ALIVE_MS = 1_000;
export const PRESSURE_HEADERS_MS = 2_000;

export interface ConnectionStats {
  readonly open: number;
  readonly addresses: number;
  readonly underPressure: boolean;
  /** Since start: connections closed on arrival because their address held its share. */
  readonly refusedPerAddress: number;
  /** Since start: connections closed on arrival because every place was taken by requests or by their own address. */
  readonly refusedFull: number;
  /** Since start: connections closed to make room for another address's. */
  readonly evicted: number;
}

/**
 * The open connections by address, oldest first in each, with the addresses grouped by how many
 * they hold: the address holding the most is found at once. Counts move by one, so the largest is
 * kept in O(1) too. (A scan of every address for each connection past the limit would make a flood
 * from many addresses cost the service time in proportion to their number.)
 */
export class SocketsByAddress<S> {
  /** Each address's sockets, oldest first (a Set keeps insertion order); an address holding none is absent. */
  private readonly sockets = new Map<string, Set<S>>();
  private readonly byCount = new Map<number, Set<string>>();
  private most = 0;
  private total = 0;

  /** Sockets held, over every address. */
  get size(): number {
    return this.total;
  }

  /** Addresses holding at least one. */
  get addresses(): number {
    return this.sockets.size;
  }

  countOf(address: string): number {
    return this.sockets.get(address)?.size ?? 0;
  }

  /** `address`'s sockets, oldest first. */
  of(address: string): Iterable<S> {
    return this.sockets.get(address) ?? [];
  }

  *all(): Iterable<S> {
    for (const held of this.sockets.values()) yield* held;
  }

  add(address: string, socket: S): void {
    let held = this.sockets.get(address);
    if (!held) this.sockets.set(address, (held = new Set()));
    const before = held.size;
    held.add(socket);
    if (held.size === before) return;
    this.total++;
    this.regroup(address, before, held.size);
  }

  /** Takes `socket` out; false when it was not held (taken out already). */
  delete(address: string, socket: S): boolean {
    const held = this.sockets.get(address);
    if (!held?.delete(socket)) return false;
    this.total--;
    if (held.size === 0) this.sockets.delete(address);
    this.regroup(address, held.size + 1, held.size);
    return true;
  }

  /** An address other than `except` holding the most of them all, with its count; none if `except` alone does. */
  heaviest(except?: string): { address: string; count: number } | undefined {
    for (const address of this.byCount.get(this.most) ?? [])
      if (address !== except) return { address, count: this.most };
    return undefined;
  }

  private regroup(address: string, from: number, to: number): void {
    if (from > 0) {
      const group = this.byCount.get(from)!;
      group.delete(address);
      if (group.size === 0) this.byCount.delete(from);
    }
    if (to > 0) {
      let group = this.byCount.get(to);
      if (!group) this.byCount.set(to, (group = new Set()));
      group.add(address);
    }
    if (to > this.most) this.most = to;
    while (this.most > 0 && !this.byCount.has(this.most)) this.most--;
  }
}

export class ConnectionGuard {
  private readonly held = new SocketsByAddress<net.Socket>();
  /** Per socket: requests in flight (a socket with one is never evicted), and whether one was answered. */
  private readonly use = new WeakMap<net.Socket, { inFlight: number; answered: boolean }>();
  private pressure = false;
  private refusedPerAddress = 0;
  private refusedFull = 0;
  private evicted = 0;
  private readonly normal: { keepAliveTimeout: number; headersTimeout: number };

  constructor(
    private readonly server: http.Server,
    private readonly limits: ConnectionLimits,
  ) {
    if (!(limits.maxConnections >= 1) || !(limits.maxPerAddress >= 0))
      throw new RangeError('maxConnections must be ≥ 1 and maxPerAddress ≥ 0');
    this.normal = { keepAliveTimeout: server.keepAliveTimeout, headersTimeout: server.headersTimeout };
    server.on('connection', (socket: net.Socket) => this.admit(socket));
    server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      const use = this.useOf(req.socket);
      use.inFlight++;
      res.once('close', () => {
        use.inFlight--;
        use.answered = true;
      });
    });
  }

  private useOf(socket: net.Socket): { inFlight: number; answered: boolean } {
    let use = this.use.get(socket);
    if (!use) this.use.set(socket, (use = { inFlight: 0, answered: false }));
    return use;
  }

  stats(): ConnectionStats {
    return {
      open: this.held.size,
      addresses: this.held.addresses,
      underPressure: this.pressure,
      refusedPerAddress: this.refusedPerAddress,
      refusedFull: this.refusedFull,
      evicted: this.evicted,
    };
  }

  private admit(socket: net.Socket): void {
    const address = clientAddress(socket.remoteAddress);
    const { maxConnections, maxPerAddress } = this.limits;
    if (maxPerAddress > 0 && this.held.countOf(address) >= maxPerAddress) {
      this.refusedPerAddress++;
      socket.destroy();
      return;
    }
    if (this.held.size >= maxConnections && !this.evictFor(address)) {
      this.refusedFull++;
      socket.destroy();
      return;
    }
    this.held.add(address, socket);
    socket.once('close', () => {
      if (this.held.delete(address, socket)) this.checkPressure(); // else evicted: counted out already
    });
    this.checkPressure();
  }

  /** Closes the oldest connection not serving a request of the address holding the most, if not `address`. */
  private evictFor(address: string): boolean {
    const heaviest = this.held.heaviest(address);
    // Only from an address holding more than the newcomer's would after: a fair share, not a swap.
    if (!heaviest || heaviest.count < this.held.countOf(address) + 2) return false;
    for (const victim of this.held.of(heaviest.address)) {
      if ((this.use.get(victim)?.inFlight ?? 0) > 0) continue;
      this.evicted++;
      // Counted out now, not at its 'close' event (next tick), so the newcomer's place is free.
      this.held.delete(heaviest.address, victim);
      victim.destroy();
      return true;
    }
    return false;
  }

  private checkPressure(): void {
    const { maxConnections } = this.limits;
    const open = this.held.size;
    if (!this.pressure && open >= Math.ceil(maxConnections * 0.75)) {
      this.pressure = true;
      logger.warn(
        { open, maxConnections, addresses: this.held.addresses },
        'connections under pressure: idle and header timeouts shortened',
      );
      const keepAlive = Math.min(this.normal.keepAliveTimeout, PRESSURE_KEEP_ALIVE_MS);
      this.server.keepAliveTimeout = keepAlive; // for connections that turn idle from now on
      this.server.headersTimeout = Math.min(this.normal.headersTimeout, PRESSURE_HEADERS_MS); // read at Node's next check
      // Those idle now: their keep-alive timer re-armed short, not closed at once, so a client that
      // is about to reuse its connection still can. Node clears it when their next request comes.
      for (const socket of this.held.all()) {
        const use = this.use.get(socket);
        if (use?.answered && use.inFlight === 0) socket.setTimeout(keepAlive);
      }
    } else if (this.pressure && open < Math.floor(maxConnections / 2)) {
      this.pressure = false;
      logger.info({ open }, 'connections back under half the limit: timeouts restored');
      this.server.keepAliveTimeout = this.normal.keepAliveTimeout;
      this.server.headersTimeout = this.normal.headersTimeout;
    }
  }
}
