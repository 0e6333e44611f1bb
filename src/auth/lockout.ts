import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'

// Per-account lockout after consecutive failed logins, keyed on the normalised email whether
// or not an account exists (so the lockout itself reveals nothing). Locks double from the base
// duration up to the cap; a success clears the record. Times come from the app's clock so tests
// can move it; the stores only keep numbers.
//
// Count before checking: an attempt reserves one of the failures still allowed before a lock
// (all 5 at first, 1 after a lock has run out) before its password is checked, and gives the
// reservation back only if it ends without a verdict (an error, a full hashing queue). So a burst
// of concurrent guesses gets exactly as many password checks as sequential ones would, never
// one per request that raced past the check. A reservation is forgotten after RESERVATION_TTL_MS
// so that an instance dying mid-attempt cannot hold an account shut.

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
  /**
   * Reserves an attempt. Returns 0 when the attempt may go ahead (it then holds a reservation that
   * registerFailure, reset or release ends), else the epoch ms until which to wait: the end of the
   * lock, or RESERVATION_RETRY_MS ahead while the attempts that used up the allowance are running.
   */
  reserve: (key: string, now: number) => Promise<number>
  /** A wrong password: counts the failure (ending the reservation) and starts a lock at the threshold. */
  registerFailure: (key: string, now: number) => Promise<FailureResult>
  /** An attempt that ended without a verdict: gives its reservation back. */
  release: (key: string, now: number) => Promise<void>
  reset: (key: string) => Promise<void>
}

/** Reservations older than this no longer count (an attempt never takes this long). */
export const RESERVATION_TTL_MS = 30_000
/** Retry-After for an attempt refused because the allowed ones are still running. */
export const RESERVATION_RETRY_MS = 1000

/** Failures still allowed before the next lock: the threshold at first, one after a lock ran out. */
function allowance (policy: LockoutPolicy, failures: number): number {
  return Math.max(1, policy.threshold - failures)
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

interface MemoryRecord { failures: number, locks: number, lockedUntil: number, reserved: number, reservedAt: number, expiresAt: number }

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
  const store = (key: string, record: MemoryRecord, now: number) => {
    record.expiresAt = now + recordTtlMs(policy)
    records.delete(key) // re-insert: Map order is then oldest-first for eviction
    records.set(key, record)
    if (records.size > maxKeys) records.delete(records.keys().next().value as string)
  }
  const unreserve = (record: MemoryRecord, now: number) => {
    record.reserved = now - record.reservedAt > RESERVATION_TTL_MS ? 0 : Math.max(0, record.reserved - 1)
  }
  return {
    reserve: async (key, now) => {
      const record = live(key, now) ?? { failures: 0, locks: 0, lockedUntil: 0, reserved: 0, reservedAt: 0, expiresAt: 0 }
      if (record.lockedUntil > now) return record.lockedUntil
      if (now - record.reservedAt > RESERVATION_TTL_MS) record.reserved = 0
      if (record.reserved >= allowance(policy, record.failures)) return now + RESERVATION_RETRY_MS
      record.reserved++
      record.reservedAt = now
      store(key, record, now)
      return 0
    },
    registerFailure: async (key, now) => {
      const record = live(key, now) ?? { failures: 0, locks: 0, lockedUntil: 0, reserved: 0, reservedAt: 0, expiresAt: 0 }
      unreserve(record, now)
      record.failures++
      let locked = false
      // Failures that raced past the check while a lock began do not start (and double) another.
      if (record.failures >= policy.threshold && record.lockedUntil <= now) {
        record.locks++
        record.lockedUntil = now + lockDurationMs(policy, record.locks)
        locked = true
      }
      store(key, record, now)
      return { lockedUntil: locked ? record.lockedUntil : 0, locked }
    },
    release: async (key, now) => {
      const record = live(key, now)
      if (record) unreserve(record, now)
    },
    reset: async (key) => {
      records.delete(key)
    }
  }
}

// Same rules as the memory store, atomically in Redis so several instances share one record.
// ARGV: now, threshold, stale-after ms, record ttl ms.
const RESERVE = `
local h = redis.call('HMGET', KEYS[1], 'failures', 'lockedUntil', 'reserved', 'reservedAt')
local failures = tonumber(h[1]) or 0
local lockedUntil = tonumber(h[2]) or 0
local reserved = tonumber(h[3]) or 0
local reservedAt = tonumber(h[4]) or 0
local now = tonumber(ARGV[1])
if lockedUntil > now then return tostring(lockedUntil) end
if now - reservedAt > tonumber(ARGV[3]) then reserved = 0 end
if reserved >= math.max(1, tonumber(ARGV[2]) - failures) then return '-1' end
redis.call('HSET', KEYS[1], 'reserved', reserved + 1, 'reservedAt', now)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return '0'
`

// Lua that ends one reservation (never below zero; a stale one counts as gone); ARGV[1] is now,
// ARGV[staleArg] the stale-after ms.
const endReservation = (staleArg: number) => `
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved')) or 0
local reservedAt = tonumber(redis.call('HGET', KEYS[1], 'reservedAt')) or 0
if reserved > 0 then
  if tonumber(ARGV[1]) - reservedAt > tonumber(ARGV[${staleArg}]) then reserved = 1 end
  redis.call('HSET', KEYS[1], 'reserved', reserved - 1)
end
`

// Ends one reservation. ARGV: now, stale-after ms.
const UNRESERVE = endReservation(2)

// ARGV: now, threshold, base ms, cap ms, record ttl ms, stale-after ms.
const REGISTER_FAILURE = endReservation(6) + `
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
    reserve: async (key, now) => {
      const answer = Number(await redis.eval(RESERVE, 1, prefix + key, now, policy.threshold, RESERVATION_TTL_MS, recordTtlMs(policy)))
      return answer === -1 ? now + RESERVATION_RETRY_MS : answer
    },
    registerFailure: async (key, now) => {
      const [locked, lockedUntil] = await redis.eval(REGISTER_FAILURE, 1, prefix + key, now, policy.threshold,
        policy.baseSeconds * 1000, policy.maxSeconds * 1000, recordTtlMs(policy), RESERVATION_TTL_MS) as [number, string]
      return { locked: locked === 1, lockedUntil: Number(lockedUntil) }
    },
    release: async (key, now) => {
      await redis.eval(UNRESERVE, 1, prefix + key, now, RESERVATION_TTL_MS)
    },
    reset: async (key) => {
      await redis.del(prefix + key)
    }
  }
}
