import type { Kysely } from 'kysely'
import { isUniqueViolation, type Database } from '../db/database.js'
import { AppError } from '../errors.js'
import type { Sealed } from './secret-box.js'

type DbOrTrx = Kysely<Database>

// TOTP secrets, recovery codes and login challenges. Every "use once" here is one conditional
// UPDATE whose row count says who won: two concurrent uses of a code or a challenge give exactly
// one success, on SQLite and on PostgreSQL alike.

export function findTotp (db: DbOrTrx, userId: number) {
  return db.selectFrom('mfa_totp')
    .select(['user_id', 'secret', 'key_id', 'last_step', 'created_at', 'confirmed_at', 'expires_at'])
    .where('user_id', '=', userId)
    .executeTakeFirst()
}
export type TotpRow = NonNullable<Awaited<ReturnType<typeof findTotp>>>

/** A new pending enrollment replaces a pending one (never a confirmed one). */
export async function insertPendingTotp (db: DbOrTrx, userId: number, sealed: Sealed, now: string, expiresAt: string): Promise<void> {
  await db.deleteFrom('mfa_totp').where('user_id', '=', userId).where('confirmed_at', 'is', null).execute()
  try {
    await db.insertInto('mfa_totp').values({ user_id: userId, secret: sealed.ciphertext, key_id: sealed.keyId, created_at: now, confirmed_at: null, expires_at: expiresAt }).execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw new AppError(409, 'TOTP is already on for this account')
    throw error
  }
}

/** Confirms a pending, unexpired enrollment with the step of its first code; false if another request did first. */
export async function activateTotp (db: DbOrTrx, userId: number, step: number, now: string): Promise<boolean> {
  const result = await db.updateTable('mfa_totp')
    .set({ confirmed_at: now, expires_at: null, last_step: step })
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is', null)
    .where('expires_at', '>', now)
    .where('last_step', '<', step)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/**
 * Spends a time step: true only for the request that moved last_step forward to it, so a code
 * (or an older one) never works twice. `reseal`: the secret encrypted again under the current
 * key, written in the same statement (rotation at use).
 */
export async function consumeTotpStep (db: DbOrTrx, userId: number, step: number, reseal?: Sealed): Promise<boolean> {
  const result = await db.updateTable('mfa_totp')
    .set({ last_step: step, ...(reseal && { secret: reseal.ciphertext, key_id: reseal.keyId }) })
    .where('user_id', '=', userId)
    .where('confirmed_at', 'is not', null)
    .where('last_step', '<', step)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Removes the user's TOTP, confirmed or pending; true when there was one. */
export async function deleteTotp (db: DbOrTrx, userId: number): Promise<boolean> {
  const result = await db.deleteFrom('mfa_totp').where('user_id', '=', userId).executeTakeFirst()
  return result.numDeletedRows > 0n
}

/** The whole set is replaced: codes shown before stop working. */
export async function replaceRecoveryCodes (db: DbOrTrx, userId: number, codeHashes: string[], now: string): Promise<void> {
  await db.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).execute()
  await db.insertInto('mfa_recovery_codes').values(codeHashes.map((codeHash) => ({ user_id: userId, code_hash: codeHash, created_at: now, used_at: null }))).execute()
}

/** True for the one request that used this code; false when it is wrong or already used. */
export async function consumeRecoveryCode (db: DbOrTrx, userId: number, codeHash: string, now: string): Promise<boolean> {
  const result = await db.updateTable('mfa_recovery_codes').set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}

export async function countRecoveryCodesLeft (db: DbOrTrx, userId: number): Promise<number> {
  const row = await db.selectFrom('mfa_recovery_codes').select((eb) => eb.fn.countAll<number>().as('left'))
    .where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow()
  return Number(row.left)
}

export async function deleteRecoveryCodes (db: DbOrTrx, userId: number): Promise<number> {
  const result = await db.deleteFrom('mfa_recovery_codes').where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows)
}

export async function insertChallenge (db: DbOrTrx, challenge: { tokenHash: string, userId: number, now: string, expiresAt: string }): Promise<void> {
  // The user's spent and expired challenges go first: a user's rows stay few.
  await db.deleteFrom('mfa_challenges').where('user_id', '=', challenge.userId)
    .where((eb) => eb.or([eb('used_at', 'is not', null), eb('expires_at', '<=', challenge.now)]))
    .execute()
  await db.insertInto('mfa_challenges').values({ token_hash: challenge.tokenHash, user_id: challenge.userId, created_at: challenge.now, expires_at: challenge.expiresAt, used_at: null }).execute()
}

/** A challenge that can still be met: unused, unexpired, not ended by wrong codes. */
export function findLiveChallenge (db: DbOrTrx, tokenHash: string, now: string, maxFailures: number) {
  return db.selectFrom('mfa_challenges').select(['id', 'user_id', 'created_at', 'failures'])
    .where('token_hash', '=', tokenHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .where('failures', '<', maxFailures)
    .executeTakeFirst()
}

/** Uses the challenge up; false when another request did first. */
export async function consumeChallenge (db: DbOrTrx, id: number, now: string): Promise<boolean> {
  const result = await db.updateTable('mfa_challenges').set({ used_at: now }).where('id', '=', id).where('used_at', 'is', null).executeTakeFirst()
  return result.numUpdatedRows > 0n
}

/** Counts a wrong code against the challenge; returns the count after it. */
export async function countChallengeFailure (db: DbOrTrx, id: number): Promise<number> {
  const row = await db.updateTable('mfa_challenges').set((eb) => ({ failures: eb('failures', '+', 1) }))
    .where('id', '=', id).returning('failures').executeTakeFirst()
  return row?.failures ?? Number.MAX_SAFE_INTEGER
}

export async function deleteChallenges (db: DbOrTrx, userId: number): Promise<number> {
  const result = await db.deleteFrom('mfa_challenges').where('user_id', '=', userId).executeTakeFirst()
  return Number(result.numDeletedRows)
}
