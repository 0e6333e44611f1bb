import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../db/database.js'

// "Something changed in your account's second factors" emails, queued in the transaction of the
// change (templates in src/email/templates/mfa_*.{subject,txt,html}). Never a code or a secret.

export type MfaNotice = 'mfa_totp_enabled' | 'mfa_totp_disabled' | 'mfa_reset' | 'mfa_recovery_codes_regenerated' | 'mfa_recovery_code_used'
  | 'passkey_added' | 'passkey_removed'

export async function queueMfaNotice (app: FastifyInstance, db: Kysely<Database>, purpose: MfaNotice, user: { id: number, username: string, email: string },
  now: string, params: Record<string, unknown> = {}): Promise<void> {
  await app.email.queue(db, {
    purpose,
    to: user.email,
    userId: user.id,
    params: {
      username: user.username,
      at: now.slice(0, 16).replace('T', ' '),
      reset_url: `${app.config.publicUrl}/account/reset-password`,
      passkeys_url: `${app.config.publicUrl}/account/passkeys`,
      ...params
    }
  }, now)
}
