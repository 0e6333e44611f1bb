import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { recordAuditEvent } from '../audit/audit.queries.js'
import type { Database } from '../db/database.js'
import { normalizeEmail } from '../users/identity.js'
import type { UserChanges, UserRecord } from '../users/users.queries.js'
import { maskEmail, sendAccountLink } from './account-links.js'
import { voidAccountTokens } from './account-tokens.queries.js'

// What a PUT with an email does, by EMAIL_VERIFICATION:
// - off: the email changes at once (the FastAPI app's behaviour);
// - optional: it changes at once, unverified; a link goes to the new address, a notice to the old;
// - required: it stays as it is; the new address waits in pending_email for its link to be
//   opened (POST /users/verify-email/confirm makes the change); a notice goes to the old address.
// The same address in other letter case is a cosmetic change, applied at once, and cancels a
// pending change.

export type EmailChangeKind = 'none' | 'case' | 'cancel' | 'immediate' | 'pending'

export interface EmailChangePlan {
  kind: EmailChangeKind
  /** Columns to set on the user row. */
  changes: UserChanges
  /** The new address, lower case: what must not be taken by another account. */
  newNormalized?: string
}

export function planEmailChange (mode: FastifyInstance['config']['emailVerification'], target: UserRecord, email: string | undefined): EmailChangePlan {
  if (email === undefined) return { kind: 'none', changes: {} }
  const newNormalized = normalizeEmail(email)
  if (newNormalized === normalizeEmail(target.email)) {
    const changes: UserChanges = email === target.email ? {} : { email }
    if (target.pending_email !== null) return { kind: 'cancel', changes: { ...changes, pending_email: null } }
    return { kind: email === target.email ? 'none' : 'case', changes }
  }
  if (mode === 'required') return { kind: 'pending', changes: { pending_email: email }, newNormalized }
  return { kind: 'immediate', changes: { email, email_normalized: newNormalized, email_verified_at: null, pending_email: null }, newNormalized }
}

/** The plan's emails, token changes and audit event, in the transaction that updates the row. */
export async function recordEmailChange (app: FastifyInstance, db: Kysely<Database>, request: FastifyRequest, plan: EmailChangePlan,
  target: UserRecord, actorId: number, now: number): Promise<void> {
  const at = new Date(now).toISOString()
  const user = { id: target.id, username: target.username }
  const email = plan.changes.email ?? plan.changes.pending_email
  const event = { userId: target.id, actorId, outcome: 'success' } as const
  switch (plan.kind) {
    case 'cancel':
      await voidAccountTokens(db, target.id, { purposes: ['change_email'] }, at)
      return
    case 'immediate':
      // Links sent to the old address (a reset among them) must not reach the account any more.
      await voidAccountTokens(db, target.id, { emailNormalized: normalizeEmail(target.email) }, at)
      await app.email.queue(db, { purpose: 'email_changed', to: target.email, userId: target.id, params: { username: target.username, masked_email: maskEmail(email!) } }, at)
      if (app.config.emailVerification === 'optional') await sendAccountLink(app, db, { purpose: 'verify_email', user, to: email!, limited: true }, now)
      await recordAuditEvent(db, request, { ...event, type: 'email_change' }, at)
      return
    case 'pending':
      await sendAccountLink(app, db, { purpose: 'change_email', user, to: email!, limited: true }, now)
      await app.email.queue(db, { purpose: 'email_change_requested', to: target.email, userId: target.id, params: { username: target.username, masked_email: maskEmail(email!) } }, at)
      await recordAuditEvent(db, request, { ...event, type: 'email_change_requested' }, at)
  }
}
