import { randomBytes } from 'node:crypto'
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2'
import { createRequire } from 'node:module'
import type bcryptModule from 'bcrypt'
import { errors } from '../errors.js'

// OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1.
export const ARGON2_OPTIONS = {
  algorithm: 2, // Algorithm.Argon2id (a const enum, not importable under verbatimModuleSyntax)
  memoryCost: 19456,
  timeCost: 2,
  parallelism: 1
} as const

const BCRYPT_PREFIX = /^\$2[aby]\$/

export interface PasswordCheck {
  ok: boolean
  /** True when the stored hash should be replaced by a fresh argon2id hash (legacy bcrypt, old parameters). */
  needsRehash: boolean
}

/**
 * Runs at most `concurrency` hashes at a time, so a login flood queues here instead of
 * filling libuv's thread pool (which DNS and file I/O share). Waiting callers beyond
 * `maxQueue` are refused at once rather than piling up.
 */
export class HashPool {
  private running = 0
  private readonly waiting: Array<() => void> = []

  constructor (readonly concurrency: number, readonly maxQueue: number = concurrency * 64) {}

  get pending (): number {
    return this.waiting.length
  }

  /** Runs fn when a slot is free; returns undefined (without running it) when the queue is full. */
  async run<T> (fn: () => Promise<T>): Promise<T | undefined> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.maxQueue) return undefined
      await new Promise<void>((resolve) => this.waiting.push(resolve))
    } else {
      this.running++
    }
    try {
      return await fn()
    } finally {
      const next = this.waiting.shift()
      if (next) next()
      else this.running--
    }
  }
}

export interface Passwords {
  hash: (password: string) => Promise<string>
  verify: (storedHash: string, password: string) => Promise<PasswordCheck>
  /** Spend the same time as a real verification when there is no account, so timing reveals nothing. */
  verifyDummy: (password: string) => Promise<void>
  pool: HashPool
}

/** Called with the seconds one hash or verification took (not counting the wait for a slot): metrics. */
export type HashDurationObserver = (operation: 'hash' | 'verify', seconds: number) => void

// bcrypt is needed only for legacy hashes: loaded at the first one, not at start.
let bcrypt: typeof bcryptModule | undefined
function loadBcrypt (): typeof bcryptModule {
  bcrypt ??= createRequire(import.meta.url)('bcrypt') as typeof bcryptModule
  return bcrypt
}

/** Password hashing bound to a HashPool: argon2id for new hashes, bcrypt still verified. */
export async function createPasswords (concurrency: number, maxQueue?: number, onDuration?: HashDurationObserver): Promise<Passwords> {
  const pool = new HashPool(concurrency, maxQueue)
  const limited = async <T>(fn: () => Promise<T>, operation: 'hash' | 'verify' = 'verify'): Promise<T> => {
    const result = await pool.run(onDuration === undefined ? fn : async () => {
      const started = performance.now()
      try {
        return await fn()
      } finally {
        onDuration(operation, (performance.now() - started) / 1000)
      }
    })
    if (result === undefined) throw errors.serviceUnavailable('Too many password checks in progress; retry shortly', 1)
    return result
  }
  const dummyHash = await argon2Hash(randomBytes(16).toString('hex'), ARGON2_OPTIONS)

  return {
    pool,
    hash: (password) => limited(() => argon2Hash(password, ARGON2_OPTIONS), 'hash'),
    verify: (storedHash, password) => limited(async () => {
      if (BCRYPT_PREFIX.test(storedHash)) {
        // bcrypt only ever used the first 72 bytes; the bcrypt package does the same truncation
        // passlib did, so legacy passwords longer than that still verify.
        const ok = await loadBcrypt().compare(password, storedHash.replace(/^\$2y\$/, '$2b$'))
        return { ok, needsRehash: ok }
      }
      if (!storedHash.startsWith('$argon2')) return { ok: false, needsRehash: false }
      const ok = await argon2Verify(storedHash, password).catch(() => false)
      const current = storedHash.startsWith(`$argon2id$v=19$m=${ARGON2_OPTIONS.memoryCost},t=${ARGON2_OPTIONS.timeCost},p=${ARGON2_OPTIONS.parallelism}$`)
      return { ok, needsRehash: ok && !current }
    }),
    verifyDummy: async (password) => {
      await limited(() => argon2Verify(dummyHash, password).catch(() => false))
    }
  }
}
