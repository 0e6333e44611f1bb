import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'
import { countRecoveryCodesLeft, deleteChallenges, deleteRecoveryCodes, deleteTotp } from './mfa.queries.js'
import { deletePasskeys } from './passkeys.queries.js'

// What second factors an account has, in one place: a confirmed TOTP, or a passkey. A passkey
// (with user verification, which we require) is a second factor for the password login and a
// whole login on its own (POST /users/login/passkey, aal2).

type DbOrTrx = Kysely<Database>

export type MfaMethod = 'totp' | 'recovery_code' | 'passkey'

/** The methods a login challenge can be met with, as POST /users/login's 403 lists them. */
export async function listMfaMethods (db: DbOrTrx, userId: number): Promise<MfaMethod[]> {
  const totp = await db.selectFrom('mfa_totp').select('user_id').where('user_id', '=', userId).where('confirmed_at', 'is not', null).executeTakeFirst()
  const methods: MfaMethod[] = []
  if (totp !== undefined) methods.push('totp')
  if (await countRecoveryCodesLeft(db, userId) > 0) methods.push('recovery_code')
  // "passkey": the client completes by logging in with it (POST /users/login/passkey).
  if (await countPasskeys(db, userId) > 0) methods.push('passkey')
  return methods
}

/**
 * users.mfa_enabled follows the factor tables: 1 while the account has a confirmed TOTP or a
 * passkey. Call in the transaction of every change to a factor; it is
 * what the per-request session check reads for assertSecondFactor and the login for step 3.
 */
export async function syncMfaEnabled (db: DbOrTrx, userId: number): Promise<boolean> {
  const row = await db.updateTable('users')
    .set((eb) => ({
      mfa_enabled: eb.case()
        .when(eb.or([
          eb.exists(eb.selectFrom('mfa_totp').select('mfa_totp.user_id').whereRef('mfa_totp.user_id', '=', 'users.id').where('mfa_totp.confirmed_at', 'is not', null)),
          eb.exists(eb.selectFrom('passkeys').select('passkeys.id').whereRef('passkeys.user_id', '=', 'users.id'))
        ]))
        .then(1)
        .else(0)
        .end()
    }))
    .where('id', '=', userId)
    .returning('mfa_enabled')
    .executeTakeFirst()
  return row !== undefined && row.mfa_enabled !== 0
}

/** Registered passkeys. */
export async function countPasskeys (db: DbOrTrx, userId: number): Promise<number> {
  const row = await db.selectFrom('passkeys').select((eb) => eb.fn.countAll<number>().as('count'))
    .where('user_id', '=', userId).executeTakeFirstOrThrow()
  return Number(row.count)
}

/** An admin's reset: every factor (TOTP, passkeys), every recovery code and every open login challenge of the user. */
export async function removeAllFactors (db: DbOrTrx, userId: number): Promise<{ totp: boolean, recoveryCodes: number, passkeys: number }> {
  const totp = await deleteTotp(db, userId)
  const recoveryCodes = await deleteRecoveryCodes(db, userId)
  const passkeys = await deletePasskeys(db, userId)
  await deleteChallenges(db, userId)
  await syncMfaEnabled(db, userId)
  return { totp, recoveryCodes, passkeys }
}
