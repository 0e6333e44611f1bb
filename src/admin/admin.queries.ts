import type { Kysely } from 'kysely'
import type { Dialect } from '../config.js'
import type { Database, Role } from '../db/database.js'
import { errors } from '../errors.js'
import { PUBLIC_USER_COLUMNS, toPublicUser, type PublicUser, type UserRecord } from '../users/users.queries.js'
import { effectiveStatus, isSuspended, type StatusColumns } from './account-status.js'

type DbOrTrx = Kysely<Database>

/** Users as administrators see them: the public fields, the account's state and its live sessions. */
export function selectAdminUsers (db: DbOrTrx, now: string) {
  return db.selectFrom('users').select((eb) => [
    ...PUBLIC_USER_COLUMNS.map((column) => `users.${column}` as const),
    'users.status', 'users.suspended_until', 'users.suspension_reason', 'users.last_login_at',
    eb.selectFrom('sessions').select((inner) => inner.fn.countAll<number>().as('n'))
      .whereRef('sessions.user_id', '=', 'users.id')
      .where('sessions.revoked_at', 'is', null)
      .where('sessions.expires_at', '>', now)
      .as('sessions')
  ])
}

export type AdminUserRow = UserRecord & StatusColumns & {
  suspension_reason: string | null
  last_login_at: string | null
  sessions: number | string | null
}

export interface AdminUserView extends PublicUser {
  status: 'active' | 'suspended'
  suspended_until: string | null
  suspension_reason: string | null
  last_login_at: string | null
  sessions: number
}

/** The API's AdminUser. A suspension that has run out reads as none. */
export function toAdminUser (row: AdminUserRow, nowMs: number): AdminUserView {
  const suspended = isSuspended(row, nowMs)
  return {
    ...toPublicUser(row),
    status: effectiveStatus(row, nowMs),
    suspended_until: suspended ? row.suspended_until : null,
    suspension_reason: suspended ? row.suspension_reason : null,
    last_login_at: row.last_login_at,
    sessions: Number(row.sessions ?? 0)
  }
}

export function findAdminUser (db: DbOrTrx, id: number, now: string): Promise<AdminUserRow | undefined> {
  return selectAdminUsers(db, now).where('users.id', '=', id).executeTakeFirst()
}

/** What the guard rails need of the account acted on; read inside the action's transaction. */
export function findTarget (db: DbOrTrx, id: number) {
  return db.selectFrom('users')
    .select(['id', 'username', 'email', 'role', 'status', 'suspended_until', 'email_verified_at'])
    .where('id', '=', id)
    .executeTakeFirst()
}
export type Target = NonNullable<Awaited<ReturnType<typeof findTarget>>>

export type GuardedAction = 'suspend' | 'demote' | 'delete'

const SELF = {
  suspend: 'You cannot suspend your own account',
  demote: 'You cannot remove your own administrator role',
  delete: 'Administrators cannot delete their own account; another administrator can'
} as const

const LAST_ADMIN = {
  suspend: 'Cannot suspend the last active administrator',
  demote: 'Cannot remove the role of the last active administrator; make someone else an administrator first',
  delete: 'Cannot delete the last active administrator; make someone else an administrator first'
} as const

/**
 * The guard rails, in the transaction of the change: an administrator never suspends, demotes or
 * deletes themselves, and nobody takes away the last active administrator. The administrators'
 * rows are locked first (PostgreSQL; in id order, so two such actions cannot deadlock): two
 * administrators demoting each other at once are serialised, and the second is refused. SQLite
 * runs one writer at a time, and a transaction that read before another's write fails to commit.
 */
export async function assertGuardRails (db: DbOrTrx, dialect: Dialect, action: GuardedAction, actor: { id: number, role: Role }, target: Target, nowMs: number): Promise<void> {
  if (actor.id === target.id && actor.role === 'admin') throw errors.conflict(SELF[action])
  if (target.role !== 'admin' || isSuspended(target, nowMs)) return
  let query = db.selectFrom('users').select(['id', 'status', 'suspended_until']).where('role', '=', 'admin').orderBy('id')
  if (dialect === 'postgres') query = query.forUpdate()
  const admins = await query.execute()
  const others = admins.filter((admin) => admin.id !== target.id && !isSuspended(admin, nowMs))
  // Re-read under the lock: the target may have stopped being an active admin meanwhile.
  const targetNow = admins.find((admin) => admin.id === target.id)
  if (targetNow !== undefined && !isSuspended(targetNow, nowMs) && others.length === 0) throw errors.conflict(LAST_ADMIN[action])
}

export async function suspendUser (db: DbOrTrx, id: number, suspension: { until: string | null, reason: string }, now: string): Promise<void> {
  await db.updateTable('users')
    .set({ status: 'suspended', suspended_until: suspension.until, suspension_reason: suspension.reason, updated_at: now })
    .where('id', '=', id)
    .execute()
}

export async function unsuspendUser (db: DbOrTrx, id: number, now: string): Promise<void> {
  await db.updateTable('users')
    .set({ status: 'active', suspended_until: null, suspension_reason: null, updated_at: now })
    .where('id', '=', id)
    .execute()
}
