import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

// Per-account lockout after consecutive failed logins, keyed on the normalised email whether
// or not an account exists (so the lockout itself reveals nothing). Locks double from the base
// duration up to the cap; a success clears the record. Times come from the app's clock so tests
// can move it; the stores only keep numbers.

export interface LockoutPolicy {
  threshold: number
  baseSeconds: number
  maxSeconds: number
}

export interface FailureResult {
  /** Epoch ms until which logins for this key are refused; 0 when not locked. */
  lockedUntil: number
  /** True when this failure started a lock (for the audit log and metrics). */
  locked: boolean
}

export interface LockoutStore {
  lockedUntil: (key: string, now: number) => Promise<number>
  registerFailure: (key: string, now: number) => Promise<FailureResult>
  reset: (key: string) => Promise<void>
}

/** A record is forgotten this long after its last failure. */
function recordTtlMs (policy: LockoutPolicy): number {
  return (policy.maxSeconds + 3600) * 1000
}

export function lockDurationMs (policy: LockoutPolicy, lockNumber: number): number {
  return Math.min(policy.baseSeconds * 2 ** Math.max(0, lockNumber - 1), policy.maxSeconds) * 1000
}

/** Hash the email so neither memory dumps nor Redis keys hold addresses. */
export function lockoutKey (emailNormalized: string): string {
  return createHash('sha256').update(emailNormalized).digest('base64url')
}

interface MemoryRecord { failures: number, locks: number, lockedUntil: number, expiresAt: number }

/** In-process store: one instance, zero config. Bounded: the oldest records go first past maxKeys. */
export function createMemoryLockoutStore (policy: LockoutPolicy, maxKeys = 100_000): LockoutStore {
  const records = new Map<string, MemoryRecord>()
  const live = (key: string, now: number): MemoryRecord | undefined => {
    const record = records.get(key)
    if (record && record.expiresAt <= now) {
      records.delete(key)
      return undefined
    }
    return record
  }
  return {
    lockedUntil: async (key, now) => {
      const until = live(key, now)?.lockedUntil ?? 0
      return until > now ? until : 0
    },
    registerFailure: async (key, now) => {
      const record = live(key, now) ?? { failures: 0, locks: 0, lockedUntil: 0, expiresAt: 0 }
      record.failures++
      let locked = false
      // Failures that raced past the check while a lock began do not start (and double) another.
      if (record.failures >= policy.threshold && record.lockedUntil <= now) {
        record.locks++
        record.lockedUntil = now + lockDurationMs(policy, record.locks)
        locked = true
      }
      record.expiresAt = now + recordTtlMs(policy)
      records.delete(key) // re-insert: Map order is then oldest-first for eviction
      records.set(key, record)
      if (records.size > maxKeys) records.delete(records.keys().next().value as string)
      return { lockedUntil: locked ? record.lockedUntil : 0, locked }
    },
    reset: async (key) => {
      records.delete(key)
    }
  }
}

// Same rules as the memory store, atomically in Redis so several instances share one record.
const REGISTER_FAILURE = `
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local base = tonumber(ARGV[3])
local cap = tonumber(ARGV[4])
local locked = 0
local lockedUntil = 0
if failures >= threshold and tonumber(redis.call('HGET', KEYS[1], 'lockedUntil') or '0') <= now then
  local locks = redis.call('HINCRBY', KEYS[1], 'locks', 1)
  local duration = math.min(base * (2 ^ (locks - 1)), cap)
  lockedUntil = now + duration
  redis.call('HSET', KEYS[1], 'lockedUntil', lockedUntil)
  locked = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {locked, tostring(lockedUntil)}
`

export function createRedisLockoutStore (redis: Redis, policy: LockoutPolicy, prefix = 'uma:lockout:'): LockoutStore {
  return {
    lockedUntil: async (key, now) => {
      const until = Number(await redis.hget(prefix + key, 'lockedUntil') ?? 0)
      return until > now ? until : 0
    },
    registerFailure: async (key, now) => {
      const [locked, lockedUntil] = await redis.eval(REGISTER_FAILURE, 1, prefix + key, now, policy.threshold,
        policy.baseSeconds * 1000, policy.maxSeconds * 1000, recordTtlMs(policy)) as [number, string]
      return { locked: locked === 1, lockedUntil: Number(lockedUntil) }
    },
    reset: async (key) => {
      await redis.del(prefix + key)
    }
  }
}
