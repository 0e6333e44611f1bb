import { sql, type Kysely } from 'kysely'
import type { Dialect } from '../config.js'
import type { Database, EmailOutboxTable } from '../db/database.js'

type DbOrTrx = Kysely<Database>

export type OutboxRow = Omit<EmailOutboxTable, 'id' | 'attempts'> & { id: number, attempts: number }

export interface NewOutboxRow {
  purpose: string
  recipient: string
  recipientNormalized: string
  userId: number | null
  params: Record<string, unknown>
  linkSeed: string | null
}

export async function insertOutboxRow (db: DbOrTrx, row: NewOutboxRow, now: string): Promise<number> {
  const inserted = await db.insertInto('email_outbox').values({
    created_at: now,
    purpose: row.purpose,
    recipient: row.recipient,
    recipient_normalized: row.recipientNormalized,
    user_id: row.userId,
    params: JSON.stringify(row.params),
    link_seed: row.linkSeed,
    status: 'pending',
    next_attempt_at: now,
    lease_until: null,
    last_error: null,
    sent_at: null
  }).returning('id').executeTakeFirstOrThrow()
  return inserted.id
}

/**
 * Serialises the limit check for one address on PostgreSQL (a transaction-scoped advisory lock),
 * so two concurrent requests cannot both see room for one more email. SQLite transactions are
 * serialised already.
 */
export async function lockRecipient (db: DbOrTrx, dialect: Dialect, recipientNormalized: string): Promise<void> {
  if (dialect === 'postgres') await sql`select pg_advisory_xact_lock(hashtext(${'email:' + recipientNormalized}))`.execute(db)
}

/** Emails of these purposes queued for the address since `since`. */
export async function countQueuedSince (db: DbOrTrx, recipientNormalized: string, purposes: readonly string[], since: string): Promise<number> {
  const row = await db.selectFrom('email_outbox')
    .select((eb) => eb.fn.countAll<number>().as('count'))
    .where('recipient_normalized', '=', recipientNormalized)
    .where('created_at', '>', since)
    .where('purpose', 'in', purposes)
    .executeTakeFirstOrThrow()
  return Number(row.count)
}

/**
 * Takes up to `limit` due rows for this worker until `leaseUntil`: pending, due, and not held by
 * another worker (or held past its lease: that worker died). Counts the attempt. PostgreSQL skips
 * rows another worker is claiming at this moment; SQLite serialises writers anyway.
 */
export async function claimDueRows (db: DbOrTrx, dialect: Dialect, now: string, leaseUntil: string, limit: number): Promise<OutboxRow[]> {
  let due = db.selectFrom('email_outbox').select('id')
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('lease_until', 'is', null), eb('lease_until', '<=', now)]))
    .orderBy('next_attempt_at').orderBy('id')
    .limit(limit)
  if (dialect === 'postgres') due = due.forUpdate().skipLocked()
  const rows = await db.updateTable('email_outbox')
    .set((eb) => ({ lease_until: leaseUntil, attempts: eb('attempts', '+', 1) }))
    .where('id', 'in', due)
    .returningAll()
    .execute() as OutboxRow[]
  // RETURNING has no order: send in the order they were queued (an older link before a newer one).
  return rows.sort((a, b) => a.next_attempt_at.localeCompare(b.next_attempt_at) || a.id - b.id)
}

export async function markSent (db: DbOrTrx, id: number, now: string): Promise<void> {
  await db.updateTable('email_outbox')
    .set({ status: 'sent', sent_at: now, lease_until: null, link_seed: null, last_error: null })
    .where('id', '=', id)
    .execute()
}

/**
 * A failed attempt: try again at `nextAttemptAt`, or give up (dead) when there is none. A dead
 * row keeps its seed, so that `cli outbox retry` sends a link that works if it has not expired.
 */
export async function markFailed (db: DbOrTrx, id: number, error: string, nextAttemptAt: string | undefined): Promise<void> {
  await db.updateTable('email_outbox')
    .set(nextAttemptAt === undefined
      ? { status: 'dead', lease_until: null, last_error: error }
      : { next_attempt_at: nextAttemptAt, lease_until: null, last_error: error })
    .where('id', '=', id)
    .execute()
}

export async function countByStatus (db: DbOrTrx): Promise<Record<'pending' | 'dead', number>> {
  const rows = await db.selectFrom('email_outbox')
    .select(['status', (eb) => eb.fn.countAll<number>().as('count')])
    .where('status', 'in', ['pending', 'dead'])
    .groupBy('status')
    .execute()
  const counts = { pending: 0, dead: 0 }
  for (const row of rows) counts[row.status as 'pending' | 'dead'] = Number(row.count)
  return counts
}

/** Pending and dead rows, oldest first, without the seed. */
export function listUndelivered (db: DbOrTrx, limit: number) {
  return db.selectFrom('email_outbox')
    .select(['id', 'created_at', 'purpose', 'recipient', 'status', 'attempts', 'next_attempt_at', 'lease_until', 'last_error'])
    .where('status', 'in', ['pending', 'dead'])
    .orderBy('id')
    .limit(limit)
    .execute()
}

/** Dead rows go back to the queue with a fresh count (their links work if they have not expired). */
export async function requeueDead (db: DbOrTrx, now: string): Promise<number> {
  const result = await db.updateTable('email_outbox')
    .set({ status: 'pending', attempts: 0, next_attempt_at: now, lease_until: null })
    .where('status', '=', 'dead')
    .executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Sent rows older than `before` are of no more use (the per-address limits look back one hour). */
export async function purgeSent (db: DbOrTrx, before: string): Promise<number> {
  const result = await db.deleteFrom('email_outbox').where('status', '=', 'sent').where('sent_at', '<', before).executeTakeFirst()
  return Number(result.numDeletedRows)
}
