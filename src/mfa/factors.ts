import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'
import { countRecoveryCodesLeft, deleteChallenges, deleteRecoveryCodes, deleteTotp } from './mfa.queries.js'

// What second factors an account has, in one place. The passkeys work plugs in here:
// - listMfaMethods: add 'passkey' when the user has one;
// - syncMfaEnabled: an account with a passkey has a second factor too;
// - removeAllFactors: an admin's reset deletes the user's passkeys as well;
// - countPasskeys: GET /users/me/mfa.

type DbOrTrx = Kysely<Database>

export type MfaMethod = 'totp' | 'recovery_code' | 'passkey'

/** The methods a login challenge can be met with, as POST /users/login's 403 lists them. */
export async function listMfaMethods (db: DbOrTrx, userId: number): Promise<MfaMethod[]> {
  const totp = await db.selectFrom('mfa_totp').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst()
  const methods: MfaMethod[] = []
  if (totp !== undefined) methods.push('totp')
  if (await countRecoveryCodesLeft(db, userId) > 0) methods.push('recovery_code')
  // Passkeys: if (await countPasskeys(db, userId) > 0) methods.push('passkey')
  return methods
}

/**
 * users.mfa_enabled follows the factor tables: 1 while the account has a confirmed TOTP (or,
 * with the passkeys work, a passkey). Call in the transaction of every change to a factor; it is
 * what the per-request session check reads for assertSecondFactor and the login for step 3.
 */
export async function syncMfaEnabled (db: DbOrTrx, userId: number): Promise<boolean> {
  const row = await db.updateTable('users')
    .set((eb) => ({
      mfa_enabled: eb.case()
        .when(eb.exists(eb.selectFrom('mfa_totp').select('mfa_totp.user_id').whereRef('mfa_totp.user_id', '=', 'users.id').where('mfa_totp.confirmed_at', 'is not', null)))
        .then(1)
        .else(0)
        .end()
    }))
    .where('id', '=', userId)
    .returning('mfa_enabled')
    .executeTakeFirst()
  return row !== undefined && row.mfa_enabled !== 0
}

/** Registered passkeys (0 until the passkeys work adds them). */
export async function countPasskeys (_db: DbOrTrx, _userId: number): Promise<number> {
  return 0
}

/** An admin's reset: every factor, every recovery code and every open login challenge of the user. */
export async function removeAllFactors (db: DbOrTrx, userId: number): Promise<{ totp: boolean, recoveryCodes: number }> {
  const totp = await deleteTotp(db, userId)
  const recoveryCodes = await deleteRecoveryCodes(db, userId)
  await deleteChallenges(db, userId)
  // Passkeys: delete the user's passkeys here and report them.
  await syncMfaEnabled(db, userId)
  return { totp, recoveryCodes }
}
