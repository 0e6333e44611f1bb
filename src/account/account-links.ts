import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Config } from '../config.js'
import type { AccountTokenPurpose, Database } from '../db/database.js'
import { normalizeEmail } from '../users/identity.js'
import { insertAccountToken, voidAccountTokens } from './account-tokens.queries.js'

// Links sent by email that carry a single-use token: verify an address, confirm a new one,
// reset a password, set the first one. Each purpose has its lifetime and the page (or the
// operator's frontend, VERIFY_EMAIL_URL / RESET_PASSWORD_URL / SET_PASSWORD_URL) the link opens.

const LINKS: Record<AccountTokenPurpose, { ttl: (config: Config) => number, url: (config: Config) => string }> = {
  verify_email: { ttl: (config) => config.verifyTokenTtl, url: (config) => config.verifyEmailUrl },
  change_email: { ttl: (config) => config.verifyTokenTtl, url: (config) => config.verifyEmailUrl },
  reset_password: { ttl: (config) => config.resetTokenTtl, url: (config) => config.resetPasswordUrl },
  // An account an administrator created: the link sets its first password.
  invite: { ttl: (config) => config.inviteTokenTtl, url: (config) => config.setPasswordUrl }
}

/** Purposes whose link sets the password: a new password, however it was set, voids them all. */
export const PASSWORD_LINKS = ['reset_password', 'invite'] as const satisfies readonly AccountTokenPurpose[]

export interface AccountLink {
  purpose: AccountTokenPurpose
  user: { id: number, username: string }
  /** The address the link goes to (the account's, or the new one of a change). */
  to: string
  /** A request anyone can make: dropped silently past the per-address limits. */
  limited: boolean
}

/** "1 hour", "24 hours", "30 minutes": how long a link works, for the email's text. */
export function describeDuration (seconds: number): string {
  const [amount, unit] = seconds % 86400 === 0 && seconds > 86400 * 2 ? [seconds / 86400, 'day']
    : seconds % 3600 === 0 ? [seconds / 3600, 'hour']
      : seconds % 60 === 0 ? [seconds / 60, 'minute'] : [seconds, 'second']
  return `${amount} ${unit}${amount === 1 ? '' : 's'}`
}

/**
 * In the caller's transaction: voids the user's older links of this purpose (the newest one
 * supersedes them), stores the new token's hash and queues its email. Returns false, having
 * done nothing, when the per-address limits drop a limited request: the link sent before keeps
 * working.
 */
export async function sendAccountLink (app: FastifyInstance, db: Kysely<Database>, link: AccountLink, now: number): Promise<boolean> {
  if (link.limited && !await app.email.hasRoom(db, link.to, link.purpose, now)) return false
  const { config } = app
  const at = new Date(now).toISOString()
  const ttl = LINKS[link.purpose].ttl(config)
  await voidAccountTokens(db, link.user.id, { purposes: [link.purpose] }, at)
  const { seed, tokenHash } = app.email.newLink()
  await insertAccountToken(db, {
    tokenHash,
    purpose: link.purpose,
    userId: link.user.id,
    emailNormalized: normalizeEmail(link.to),
    expiresAt: new Date(now + ttl * 1000).toISOString()
  }, at)
  await app.email.queue(db, {
    purpose: link.purpose,
    to: link.to,
    userId: link.user.id,
    params: { username: link.user.username, expires_in: describeDuration(ttl) },
    link: { seed, url: LINKS[link.purpose].url(config) }
  }, at)
  return true
}

/** "n***@example.com": enough for the owner to recognise an address, not to learn it. */
export function maskEmail (email: string): string {
  const at = email.lastIndexOf('@')
  if (at < 1) return '***'
  return `${email[0]}***${email.slice(at)}`
}

/** "Your password was changed", to the account's address, in the transaction of the change. */
export async function queuePasswordChangedNotice (app: FastifyInstance, db: Kysely<Database>, user: { id: number, username: string, email: string }, now: string): Promise<void> {
  await app.email.queue(db, {
    purpose: 'password_changed',
    to: user.email,
    userId: user.id,
    params: { username: user.username, changed_at: now.slice(0, 16).replace('T', ' '), reset_url: `${app.config.publicUrl}/account/reset-password` }
  }, now)
}
