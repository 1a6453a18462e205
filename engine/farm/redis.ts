/** Redis addresses for the farm: `redis://[user:password@]host:port[/db]` to ioredis options, and a sentence when it is not one. */
import type { RedisOptions } from 'bullmq';

export function redisOptions(url: string, opts: { forWorker?: boolean } = {}): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a Redis address; expected redis://HOST:PORT (for example redis://127.0.0.1:6379)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`"${url}" is not a Redis address; expected redis://HOST:PORT`);
  const db = u.pathname.replace(/^\//, '');
  if (db && !/^\d+$/.test(db)) throw new Error(`"${url}": the database after the port must be a number (redis://HOST:PORT/0)`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(db ? { db: Number(db) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    // Workers wait for Redis as long as it takes (BullMQ requires it); submitters fail fast and say so.
    maxRetriesPerRequest: opts.forWorker ? null : 1,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}

/** The address without its password, for messages and the status line. */
export function redactedUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}
