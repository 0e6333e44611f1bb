import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config.js'
import type { Db } from '../db/database.js'
import { fillLink, linkToken } from './links.js'
import { claimDueRows, markFailed, markSent, purgeSent, type OutboxRow } from './outbox.queries.js'
import type { Templates } from './templates.js'
import type { Transport } from './transport.js'

// The outbox worker, one per server process: claims due rows with a lease, sends them, and
// records the outcome. A failure is retried with exponential backoff and jitter; after
// MAIL_MAX_ATTEMPTS the row is dead (`npm run cli -- outbox` lists it, `outbox retry` requeues).
// A process killed mid-send leaves its row leased: when the lease runs out another worker (or
// this one after a restart) takes it again. That is the one case where an email can go out
// twice: the server accepted it, and the process died before recording it.

const BATCH = 10
const MAX_BACKOFF_MS = 3600_000
const KEEP_SENT_MS = 7 * 86400_000
const PURGE_EVERY_MS = 3600_000

export interface OutboxWorkerOptions {
  db: Db
  transport: Transport
  templates: Templates
  key: Buffer
  config: Config
  log: FastifyBaseLogger
  now: () => number
  onOutcome: (purpose: string, outcome: 'sent' | 'retry' | 'dead') => void
}

export interface OutboxWorker {
  start: () => void
  /** Looks at the outbox soon (after a commit that queued an email). */
  wake: () => void
  /** One pass: sends every due row; resolves with how many it took. */
  runOnce: () => Promise<number>
  stop: () => Promise<void>
}

/** Delay before attempt n+1 after n failed attempts: base * 2^(n-1), capped, with half of it random. */
export function backoffMs (baseSeconds: number, attempts: number, random = Math.random): number {
  const full = Math.min(baseSeconds * 1000 * 2 ** Math.max(0, attempts - 1), MAX_BACKOFF_MS)
  return Math.round(full / 2 + random() * full / 2)
}

export function createOutboxWorker (options: OutboxWorkerOptions): OutboxWorker {
  const { db, transport, templates, key, config, log, now } = options
  const { mail } = config
  const sendLimitMs = mail.sendTimeout * 3000
  // Longer than any send can take, so a live worker never loses a row it is still sending.
  const leaseMs = sendLimitMs + mail.sendTimeout * 1000
  const iso = (ms: number) => new Date(ms).toISOString()
  let timer: NodeJS.Timeout | undefined
  let wakeTimer: NodeJS.Timeout | undefined
  let running: Promise<number> | undefined
  let again = false
  let stopped = true
  let lastPurge = 0

  const render = (row: OutboxRow) => {
    const params = JSON.parse(row.params) as Record<string, unknown>
    const link = row.link_seed !== null && typeof params.link_url === 'string'
      ? fillLink(params.link_url, linkToken(key, row.link_seed))
      : undefined
    return templates.render(row.purpose, { ...params, link, app_name: config.appName, public_url: config.publicUrl })
  }

  const withTimeout = async (work: Promise<void>) => {
    let limit: NodeJS.Timeout | undefined
    try {
      await Promise.race([work, new Promise<never>((_resolve, reject) => {
        limit = setTimeout(() => reject(new Error(`delivery took longer than ${sendLimitMs / 1000} s`)), sendLimitMs)
      })])
    } finally {
      clearTimeout(limit)
    }
  }

  const deliver = async (row: OutboxRow) => {
    try {
      await withTimeout(transport.send({ to: row.recipient, ...render(row) }))
    } catch (error) {
      // SMTP replies and socket errors; never the message, which holds the link.
      const reason = String((error as Error)?.message ?? error).slice(0, 500)
      const dead = row.attempts >= mail.maxAttempts
      await markFailed(db.kysely, row.id, reason, dead ? undefined : iso(now() + backoffMs(mail.retryDelay, row.attempts)))
      options.onOutcome(row.purpose, dead ? 'dead' : 'retry')
      log[dead ? 'error' : 'warn']({ outboxId: row.id, purpose: row.purpose, userId: row.user_id, attempts: row.attempts, reason },
        dead ? 'email delivery failed for the last time: marked dead' : 'email delivery failed; will retry')
      return
    }
    await markSent(db.kysely, row.id, iso(now()))
    options.onOutcome(row.purpose, 'sent')
    if (transport.kind === 'smtp') log.info({ outboxId: row.id, purpose: row.purpose, userId: row.user_id }, 'email sent')
  }

  const pass = async (): Promise<number> => {
    let taken = 0
    for (;;) {
      const at = now()
      const rows = await claimDueRows(db.kysely, db.dialect, iso(at), iso(at + leaseMs), BATCH)
      for (const row of rows) await deliver(row)
      taken += rows.length
      if (rows.length < BATCH || stopped) break
    }
    if (now() - lastPurge > PURGE_EVERY_MS) {
      lastPurge = now()
      await purgeSent(db.kysely, iso(now() - KEEP_SENT_MS))
    }
    return taken
  }

  const runOnce = (): Promise<number> => {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      let total = 0
      do {
        again = false
        try {
          total += await pass()
        } catch (error) {
          // The database is down or locked: the rows stay queued for the next pass.
          log.warn({ err: error }, 'email outbox: could not read the queue; will try again')
        }
      } while (again && !stopped)
      return total
    })().finally(() => { running = undefined })
    return running
  }

  return {
    start: () => {
      stopped = false
      timer = setInterval(() => void runOnce(), mail.pollInterval * 1000)
      timer.unref()
      void runOnce()
    },
    // A short delay: the request's transaction commits before the worker looks (on PostgreSQL
    // another connection would not see the row yet); the poll catches anything later.
    wake: () => {
      if (stopped || wakeTimer !== undefined) return
      wakeTimer = setTimeout(() => {
        wakeTimer = undefined
        void runOnce()
      }, 25)
      wakeTimer.unref()
    },
    runOnce,
    stop: async () => {
      stopped = true
      clearInterval(timer)
      clearTimeout(wakeTimer)
      await running
    }
  }
}
