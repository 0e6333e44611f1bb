import type { Kysely } from 'kysely'
import type { AccountTokenPurpose, Database } from '../db/database.js'

type DbOrTrx = Kysely<Database>

export interface NewAccountToken {
  tokenHash: string
  purpose: AccountTokenPurpose
  userId: number
  emailNormalized: string | null
  expiresAt: string
}

export async function insertAccountToken (db: DbOrTrx, token: NewAccountToken, now: string): Promise<void> {
  await db.insertInto('account_tokens').values({
    token_hash: token.tokenHash,
    purpose: token.purpose,
    user_id: token.userId,
    email_normalized: token.emailNormalized,
    created_at: now,
    expires_at: token.expiresAt,
    used_at: null
  }).execute()
}

/**
 * Voids the user's outstanding tokens of these purposes (a newer one supersedes them, the
 * password changed), or only those sent to one address (the email changed). Returns how many.
 */
export async function voidAccountTokens (db: DbOrTrx, userId: number, filter: { purposes?: readonly AccountTokenPurpose[], emailNormalized?: string }, now: string): Promise<number> {
  let query = db.updateTable('account_tokens').set({ used_at: now })
    .where('user_id', '=', userId)
    .where('used_at', 'is', null)
  if (filter.purposes !== undefined) query = query.where('purpose', 'in', filter.purposes)
  if (filter.emailNormalized !== undefined) query = query.where('email_normalized', '=', filter.emailNormalized)
  const result = await query.executeTakeFirst()
  return Number(result.numUpdatedRows)
}

const TOKEN_USER_COLUMNS = [
  'account_tokens.id as token_id', 'account_tokens.purpose', 'account_tokens.email_normalized as token_email',
  'users.id', 'users.username', 'users.email', 'users.email_normalized', 'users.email_verified_at', 'users.pending_email'
] as const

/** A usable (unused, unexpired) token of one of these purposes, with its user; reads only. */
export function findUsableToken (db: DbOrTrx, tokenHash: string, purposes: readonly AccountTokenPurpose[], now: string) {
  return db.selectFrom('account_tokens')
    .innerJoin('users', 'users.id', 'account_tokens.user_id')
    .select(TOKEN_USER_COLUMNS)
    .where('account_tokens.token_hash', '=', tokenHash)
    .where('account_tokens.purpose', 'in', purposes)
    .where('account_tokens.used_at', 'is', null)
    .where('account_tokens.expires_at', '>', now)
    .executeTakeFirst()
}
export type UsableToken = NonNullable<Awaited<ReturnType<typeof findUsableToken>>>

/**
 * Uses the token up, atomically: exactly one of several concurrent calls with the same token
 * changes the row and gets true; the others (and any call with a used, voided or expired token)
 * get false.
 */
export async function consumeAccountToken (db: DbOrTrx, tokenId: number, now: string): Promise<boolean> {
  const result = await db.updateTable('account_tokens').set({ used_at: now })
    .where('id', '=', tokenId)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
  return result.numUpdatedRows === 1n
}
