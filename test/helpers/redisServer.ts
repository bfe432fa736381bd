/** A throwaway Redis for the tests (Debian's redis-server, random port, temporary directory, no persistence). */
export { startRedis } from '../../src/bench/redisServer';
export type { RedisServer } from '../../src/bench/redisServer';
