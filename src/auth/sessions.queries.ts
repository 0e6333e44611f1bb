import type { Kysely } from 'kysely'
import type { Database, Db, SessionTable } from '../db/database.js'
import type { UserRecord } from '../users/users.queries.js'

type DbOrTrx = Kysely<Database>

/** The caller, as the per-request session check loads it: the user's row and the session's. */
export interface AuthenticatedUser extends UserRecord {
  session_id: string
  authenticated_at: string
}

export async function insertSession (db: DbOrTrx, session: Omit<SessionTable, 'revoked_at'>): Promise<void> {
  await db.insertInto('sessions').values({ ...session, revoked_at: null }).execute()
}

/**
 * The per-request check, one indexed query: the session named by the token is live, belongs to
 * the token's subject, and the user still exists (loaded in the same query).
 */
function liveSessionUserQuery (db: DbOrTrx, sessionId: string, userId: number, now: string) {
  return db.selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'users.id', 'users.username', 'users.email', 'users.role', 'users.created_at', 'users.updated_at',
      'users.email_verified_at', 'users.pending_email', 'sessions.id as session_id', 'sessions.authenticated_at'
    ])
    .where('sessions.id', '=', sessionId)
    .where('sessions.user_id', '=', userId)
    .where('sessions.revoked_at', 'is', null)
    .where('sessions.expires_at', '>', now)
}

export type SessionUserLookup = (sessionId: string, userId: number, now: string) => Promise<AuthenticatedUser | undefined>

/**
 * The session check for the hot path: Kysely compiles the SQL once; it runs as a
 * prepared statement, on SQLite's read-only connection or as a named PostgreSQL statement.
 * Call after migrations have run.
 */
export function createSessionUserLookup (db: Db): SessionUserLookup {
  const { sql } = liveSessionUserQuery(db.kysely, '', 0, '').compile()
  if (db.dialect === 'sqlite') {
    const statement = db.sqliteReader!.prepare<[string, number, string], AuthenticatedUser>(sql)
    return async (sessionId, userId, now) => statement.get(sessionId, userId, now)
  }
  const pool = db.pool!
  return async (sessionId, userId, now) => {
    const result = await pool.query<AuthenticatedUser>({ name: 'find_live_session_user', text: sql, values: [sessionId, userId, now] })
    return result.rows[0]
  }
}

/**
 * Sets the account's last login and returns its status as of now. The update takes the row's
 * lock (PostgreSQL), so it waits for a suspension being written and then reads it.
 */
export function recordLogin (db: DbOrTrx, userId: number, now: string) {
  return db.updateTable('users').set({ last_login_at: now })
    .where('id', '=', userId)
    .returning(['status', 'suspended_until'])
    .executeTakeFirst()
}

/** Revokes every live session of the user except `keepSessionId` (if given). */
export async function revokeUserSessions (db: DbOrTrx, userId: number, now: string, keepSessionId?: string): Promise<number> {
  let query = db.updateTable('sessions').set({ revoked_at: now })
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
  if (keepSessionId !== undefined) query = query.where('id', '!=', keepSessionId)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows)
}

/** Revokes one session of the user; false when it is not theirs or already revoked. */
export async function revokeSession (db: DbOrTrx, userId: number, sessionId: string, now: string): Promise<boolean> {
  const result = await db.updateTable('sessions').set({ revoked_at: now })
    .where('id', '=', sessionId)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export function listLiveSessions (db: DbOrTrx, userId: number, now: string) {
  return db.selectFrom('sessions')
    .select(['id', 'created_at', 'last_used_at', 'authenticated_at', 'expires_at', 'user_agent', 'ip'])
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', now)
    .orderBy('created_at', 'desc')
    .execute()
}

export async function insertRefreshToken (db: DbOrTrx, tokenHash: string, sessionId: string, now: string): Promise<void> {
  await db.insertInto('refresh_tokens').values({ token_hash: tokenHash, session_id: sessionId, issued_at: now, used_at: null }).execute()
}

/** The refresh token's row with its session. */
export function findRefreshToken (db: DbOrTrx, tokenHash: string) {
  return db.selectFrom('refresh_tokens')
    .innerJoin('sessions', 'sessions.id', 'refresh_tokens.session_id')
    .select([
      'refresh_tokens.used_at', 'sessions.id as session_id', 'sessions.user_id', 'sessions.created_at',
      'sessions.expires_at', 'sessions.revoked_at'
    ])
    .where('refresh_tokens.token_hash', '=', tokenHash)
    .executeTakeFirst()
}

/** Marks the token used; false when another request already did (it lost the race). */
export async function markRefreshTokenUsed (db: DbOrTrx, tokenHash: string, now: string): Promise<boolean> {
  const result = await db.updateTable('refresh_tokens').set({ used_at: now })
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function touchSession (db: DbOrTrx, sessionId: string, now: string, expiresAt: string): Promise<void> {
  await db.updateTable('sessions').set({ last_used_at: now, expires_at: expiresAt }).where('id', '=', sessionId).execute()
}
