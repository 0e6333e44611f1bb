import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import { createMemoryLockoutStore, createRedisLockoutStore, lockoutKey, type FailureResult, type LockoutStore } from '../auth/lockout.js'
import type { RateLimit } from '../config.js'
import { AppError } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Failed password logins, per normalised email. */
    lockout: Lockout
    /** Wrong second-factor codes (TOTP and recovery codes together), per account: MFA_LOCKOUT_*. */
    mfaLockout: Lockout
    /** Route config for a per-IP limit; undefined (no limit) when RATE_LIMITS=off. */
    ipLimit: (limit: RateLimit) => { max: number, timeWindow: number } | undefined
  }
}

/**
 * An attempt's view of a lockout: begin before the secret is checked; then exactly one of
 * failure (wrong password or code), success, or release (no verdict: an error, a full hashing
 * queue). `account` names what is counted (a normalised email, an MFA account key); it is
 * hashed before it is stored.
 */
export interface Lockout {
  /** 0 when the attempt may go ahead (an attempt is reserved), else seconds to wait. */
  begin: (account: string) => Promise<number>
  failure: (account: string) => Promise<FailureResult>
  success: (account: string) => Promise<void>
  release: (account: string) => Promise<void>
}

const OFF: Lockout = {
  begin: async () => 0,
  failure: async () => ({ lockedUntil: 0, locked: false }),
  success: async () => {},
  release: async () => {}
}

/** How long start-up waits for Redis before going on without it (limits fail open). */
const REDIS_READY_TIMEOUT_MS = 3000

/**
 * Per-IP limits (@fastify/rate-limit) and the per-account lockout, in process memory or, with
 * REDIS_URL, in Redis so that several instances share them. If Redis is unreachable, requests
 * are let through (fail open) and the outage is logged as an error: an unavailable counter store
 * must not lock every user out. Service recovers by itself when Redis returns.
 */
export default fp(async (app) => {
  const { config } = app
  let redis: Redis | undefined
  if (config.rateLimits && config.redisUrl) {
    // Loaded only when configured: without REDIS_URL the process does not carry ioredis.
    const { Redis: RedisClient } = createRequire(import.meta.url)('ioredis') as typeof import('ioredis')
    redis = new RedisClient(config.redisUrl, {
      // Fail fast instead of queueing commands while disconnected: a limit check must never hang.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: 500,
      connectTimeout: 2000,
      retryStrategy: (attempt) => Math.min(attempt * 250, 2000)
    })
    let down = false
    redis.on('error', (error) => {
      if (!down) app.log.error({ err: error }, 'Redis unavailable: rate limits and lockout are NOT enforced until it returns')
      down = true
    })
    redis.on('ready', () => {
      if (down) app.log.warn('Redis reachable again: rate limits and lockout enforced')
      down = false
    })
    const ready = await Promise.race([
      new Promise<boolean>((resolve) => redis!.once('ready', () => resolve(true))),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), REDIS_READY_TIMEOUT_MS).unref())
    ])
    if (!ready) app.log.error('Redis not reachable at start; continuing without shared limits until it is')
    app.addHook('onClose', async () => {
      redis!.disconnect()
    })
  }

  if (!config.rateLimits) {
    app.log.warn('RATE_LIMITS=off: per-IP limits and account lockout are disabled (benchmarks and load tests only)')
    app.decorate('lockout', OFF)
    app.decorate('mfaLockout', OFF)
    app.decorate('ipLimit', () => undefined)
    return
  }

  await app.register(rateLimit, {
    global: false,
    redis,
    nameSpace: 'uma:ip:',
    skipOnError: true,
    // The plugin's default key is request.ip (which TRUST_PROXY governs) with an IPv6 address
    // reduced to its /64 and an IPv4-mapped one to its IPv4 form: one client cannot escape the
    // limit by rotating through the addresses of its own IPv6 subnet.
    errorResponseBuilder: (_request, context) => new AppError(429,
      `Too many requests from your address; retry in ${Math.max(1, Math.ceil(context.ttl / 1000))} seconds`,
      { 'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))) })
  })
  app.decorate('ipLimit', (limit: RateLimit) => ({ max: limit.max, timeWindow: limit.window * 1000 }))

  // The same rules for both (count before checking, shared through Redis when configured); MFA
  // locks do not grow: every lock lasts MFA_LOCKOUT_DURATION.
  const mfaPolicy = { threshold: config.mfa.lockoutThreshold, baseSeconds: config.mfa.lockoutSeconds, maxSeconds: config.mfa.lockoutSeconds }
  const stores: Record<'login' | 'mfa', LockoutStore> = redis
    ? { login: createRedisLockoutStore(redis, config.lockout), mfa: createRedisLockoutStore(redis, mfaPolicy, 'uma:mfa-lockout:') }
    : { login: createMemoryLockoutStore(config.lockout), mfa: createMemoryLockoutStore(mfaPolicy) }
  const failOpen = async <T>(operation: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await operation()
    } catch (error) {
      app.log.error({ err: error }, 'lockout store unavailable: failing open')
      return fallback
    }
  }
  const lockoutOver = (store: LockoutStore): Lockout => ({
    begin: async (account: string) => {
      const now = app.now()
      const until = await failOpen(() => store.reserve(lockoutKey(account), now), 0)
      return until > now ? Math.ceil((until - now) / 1000) : 0
    },
    failure: (account: string) => failOpen(() => store.registerFailure(lockoutKey(account), app.now()), { lockedUntil: 0, locked: false }),
    success: (account: string) => failOpen(() => store.reset(lockoutKey(account)), undefined),
    release: (account: string) => failOpen(() => store.release(lockoutKey(account), app.now()), undefined)
  })
  app.decorate('lockout', lockoutOver(stores.login))
  app.decorate('mfaLockout', lockoutOver(stores.mfa))
}, { name: 'limits', dependencies: ['auth'] })
