import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'
import { open, seal, totpSecretContext, type MfaKeyring } from './secret-box.js'

export interface RotationReport {
  /** Secrets now encrypted under the current key that were not before. */
  reencrypted: number
  /** Secrets that were under the current key already. */
  current: number
  /** Secrets under a key that is not configured, by key id: they cannot be read until it is. */
  unreadable: Record<string, number>
}

/**
 * Encrypts every TOTP secret (pending ones too) under the current key, one row at a time; a row
 * changed meanwhile (a login re-encrypted it, TOTP was removed) is left as it is. After a report
 * with nothing unreadable, the previous keys can be dropped from MFA_PREVIOUS_ENCRYPTION_KEYS.
 */
export async function reencryptTotpSecrets (db: Kysely<Database>, keyring: MfaKeyring): Promise<RotationReport> {
  const report: RotationReport = { reencrypted: 0, current: 0, unreadable: {} }
  const rows = await db.selectFrom('mfa_totp').select(['user_id', 'secret', 'key_id']).execute()
  for (const row of rows) {
    if (row.key_id === keyring.currentId) {
      report.current++
      continue
    }
    if (!keyring.keys.has(row.key_id)) {
      report.unreadable[row.key_id] = (report.unreadable[row.key_id] ?? 0) + 1
      continue
    }
    const context = totpSecretContext(row.user_id)
    const sealed = seal(keyring, open(keyring, { ciphertext: row.secret, keyId: row.key_id }, context), context)
    const result = await db.updateTable('mfa_totp').set({ secret: sealed.ciphertext, key_id: sealed.keyId })
      .where('user_id', '=', row.user_id).where('key_id', '=', row.key_id).where('secret', '=', row.secret)
      .executeTakeFirst()
    if (result.numUpdatedRows > 0n) report.reencrypted++
  }
  return report
}
