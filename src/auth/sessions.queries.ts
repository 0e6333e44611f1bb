import type { Kysely } from 'kysely'
import type { Database, Role, SessionTable } from '../db/database.js'

type DbOrTrx = Kysely<Database>

export interface AuthenticatedUser {
  id: number
  username: string
  email: string
  role: Role
  created_at: string
  updated_at: string
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
export function findLiveSessionUser (db: DbOrTrx, sessionId: string, userId: number, now: string): Promise<AuthenticatedUser | undefined> {
  return db.selectFrom('sessions')
    .innerJoin('users', 'users.id', 'sessions.user_id')
    .select([
      'users.id', 'users.username', 'users.email', 'users.role', 'users.created_at', 'users.updated_at',
      'sessions.id as session_id', 'sessions.authenticated_at'
    ])
    .where('sessions.id', '=', sessionId)
    .where('sessions.user_id', '=', userId)
    .where('sessions.revoked_at', 'is', null)
    .where('sessions.expires_at', '>', now)
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
