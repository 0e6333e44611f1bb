import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isSuspended } from '../admin/account-status.js'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { revokeUserSessions } from '../auth/sessions.queries.js'
import { isUniqueViolation, type AccountTokenPurpose } from '../db/database.js'
import { hashLinkToken } from '../email/links.js'
import { errors } from '../errors.js'
import { normalizeEmail, passwordProblem } from '../users/identity.js'
import { findUserByEmailWithStatus, updateUser, type UserWithStatus } from '../users/users.queries.js'
import { errorResponses } from '../users/users.schemas.js'
import { PASSWORD_LINKS, queuePasswordChangedNotice, sendAccountLink } from './account-links.js'
import { consumeAccountToken, findUsableToken, voidAccountTokens, type UsableToken } from './account-tokens.queries.js'
import { Accepted, LinkRequest, Message, PasswordResetConfirm, VerifyEmailConfirm } from './account.schemas.js'

// The account lifecycle by email: password reset, email verification and the confirmation of
// a new address. The request endpoints answer the same 202 whatever happened (unknown address,
// limit reached, mail server down): they only queue, in one transaction with an audit event in
// every case, so that an existing account costs no more time than a missing one. The confirm
// endpoints take a link's token once; every kind of bad token gets the same 400.

const RESET_ACCEPTED = 'If an account exists for this email, we have sent a link to reset its password'
const VERIFY_ACCEPTED = 'If an account with this email needs verifying, we have sent it a link'
const ME_VERIFY_ACCEPTED = 'If your email address needs verifying, we have sent a link to it'

const invalidLinkToken = () => errors.badRequest('Invalid or expired token')
const iso = (ms: number) => new Date(ms).toISOString()

type LinkOutcome = 'sent' | 'limited' | 'no_account' | 'not_needed' | 'suspended'

/**
 * A visitor asks for a link to `email`: looks the account up, lets `decide` pick the link (or
 * none, or name why not), and records what happened, all in one transaction. The visitor never
 * learns which.
 */
async function requestLink (app: FastifyInstance, request: FastifyRequest, email: string, type: 'password_reset_requested' | 'email_verification_requested',
  decide: (user: UserWithStatus, now: number) => { purpose: AccountTokenPurpose, to: string } | 'suspended' | undefined): Promise<void> {
  const now = app.now()
  await app.db.kysely.transaction().execute(async (trx) => {
    const user = await findUserByEmailWithStatus(trx, normalizeEmail(email))
    const link = user && decide(user, now)
    let outcome: LinkOutcome = user === undefined ? 'no_account' : link === 'suspended' ? 'suspended' : 'not_needed'
    if (user !== undefined && typeof link === 'object') {
      outcome = await sendAccountLink(app, trx, { ...link, user, limited: true }, now) ? 'sent' : 'limited'
    }
    await recordAuditEvent(trx, request, { type, outcome: outcome === 'sent' ? 'success' : 'failure', userId: user?.id, detail: { result: outcome } }, iso(now))
  })
}

/** The token's row and user, or the one 400 for every kind of bad token. */
async function usableToken (app: FastifyInstance, token: string, purposes: readonly AccountTokenPurpose[]): Promise<UsableToken> {
  const found = await findUsableToken(app.db.kysely, hashLinkToken(token), purposes, iso(app.now()))
  if (found === undefined) throw invalidLinkToken()
  return found
}

const accountRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  const policy = { minLength: config.passwordMinLength, maxLength: config.passwordMaxLength }
  // Per client address and endpoint, like the login and signup limits.
  const linkLimit = { rateLimit: app.ipLimit(config.mail.ipLimit) }

  app.post('/users/password-reset/request', {
    config: linkLimit,
    schema: {
      tags: ['account'],
      operationId: 'requestPasswordReset',
      summary: 'Email a link to reset the password (the same answer whether or not the account exists)',
      body: LinkRequest,
      response: { 202: Accepted, ...errorResponses({ 400: 'Invalid data', 429: 'Too many requests from your address' }) }
    }
  }, async (request, reply) => {
    // A suspended account gets nothing (the same 202): a new password would not let it in, and
    // the link would reach whoever the suspension is meant to keep out.
    await requestLink(app, request, request.body.email, 'password_reset_requested', (user, now) =>
      isSuspended(user, now) ? 'suspended' : { purpose: 'reset_password', to: user.email })
    return reply.code(202).send({ detail: RESET_ACCEPTED })
  })

  app.post('/users/password-reset/confirm', {
    schema: {
      tags: ['account'],
      operationId: 'confirmPasswordReset',
      summary: 'Set a new password with the token from a reset link or an invitation; ends every session of the account',
      description: 'Takes the token of a password-reset link or of an invitation (an account an administrator ' +
        'created). Either proves the address it was sent to, so the email becomes verified.',
      body: PasswordResetConfirm,
      response: { 200: Message, ...errorResponses({ 400: 'Invalid or expired token, or a new password the policy refuses (the token stays usable)', 503: 'Too many password changes in progress; retry shortly' }) }
    }
  }, async (request) => {
    const { token, new_password: password } = request.body
    const found = await usableToken(app, token, PASSWORD_LINKS)
    const invite = found.purpose === 'invite'
    const problem = passwordProblem(password, policy, { username: found.username, email: found.email })
    if (problem) throw errors.badRequest(problem)
    const hashedPassword = await app.passwords.hash(password)
    const now = iso(app.now())
    const done = await app.db.kysely.transaction().execute(async (trx) => {
      if (!await consumeAccountToken(trx, found.token_id, now)) return false
      // The link reached this address, so the address is the user's.
      const proven = found.email_verified_at === null && found.token_email === found.email_normalized
      await updateUser(trx, found.id, { hashed_password: hashedPassword, updated_at: now, ...(proven ? { email_verified_at: now } : {}) })
      const revoked = await revokeUserSessions(trx, found.id, now)
      await voidAccountTokens(trx, found.id, { purposes: PASSWORD_LINKS }, now)
      // An invitation sets the first password: there is no earlier one to warn about.
      if (!invite) await queuePasswordChangedNotice(app, trx, found, now)
      await recordAuditEvent(trx, request, { type: invite ? 'invite_accepted' : 'password_reset', outcome: 'success', userId: found.id, actorId: found.id, detail: { sessions_revoked: revoked } }, now)
      return true
    })
    if (!done) throw invalidLinkToken()
    // Whoever holds the link controls the mailbox: failed logins before it no longer count.
    await app.lockout.success(found.email_normalized)
    request.log.info({ userId: found.id }, invite ? 'invitation accepted' : 'password reset')
    return { message: invite ? 'Password has been set' : 'Password has been reset' }
  })

  app.post('/users/verify-email/request', {
    config: linkLimit,
    schema: {
      tags: ['account'],
      operationId: 'requestEmailVerification',
      summary: 'Email a link to verify the address (the same answer whatever the account\'s state)',
      body: LinkRequest,
      response: { 202: Accepted, ...errorResponses({ 400: 'Invalid data', 429: 'Too many requests from your address' }) }
    }
  }, async (request, reply) => {
    await requestLink(app, request, request.body.email, 'email_verification_requested', (user) =>
      config.emailVerification !== 'off' && user.email_verified_at === null ? { purpose: 'verify_email', to: user.email } : undefined)
    return reply.code(202).send({ detail: VERIFY_ACCEPTED })
  })

  app.post('/users/me/verify-email', {
    onRequest: app.authenticate,
    config: linkLimit,
    schema: {
      tags: ['account'],
      operationId: 'requestMyEmailVerification',
      summary: 'Email the caller a link to verify their address (or to confirm a pending new one)',
      security: [{ bearerAuth: [] }],
      response: { 202: Accepted, ...errorResponses({ 401: 'Missing or invalid token', 429: 'Too many requests from your address' }) }
    }
  }, async (request, reply) => {
    await requestLink(app, request, request.user.email, 'email_verification_requested', (user) => {
      if (config.emailVerification === 'off') return undefined
      if (user.email_verified_at === null) return { purpose: 'verify_email', to: user.email }
      if (user.pending_email !== null) return { purpose: 'change_email', to: user.pending_email }
      return undefined
    })
    return reply.code(202).send({ detail: ME_VERIFY_ACCEPTED })
  })

  app.post('/users/verify-email/confirm', {
    schema: {
      tags: ['account'],
      operationId: 'confirmEmailVerification',
      summary: 'Verify an address with the token from a verification link (a pending new address becomes the account\'s)',
      body: VerifyEmailConfirm,
      response: { 200: Message, ...errorResponses({ 400: 'Invalid or expired token, or the new address was registered by another account in the meantime' }) }
    }
  }, async (request) => {
    const found = await usableToken(app, request.body.token, ['verify_email', 'change_email'])
    const now = iso(app.now())
    const event = { outcome: 'success', userId: found.id, actorId: found.id } as const
    const done = await app.db.kysely.transaction().execute(async (trx) => {
      if (!await consumeAccountToken(trx, found.token_id, now)) return false
      if (found.purpose === 'verify_email') {
        // A link to an address the account no longer has proves nothing about the current one.
        if (found.token_email !== found.email_normalized) return false
        await updateUser(trx, found.id, { email_verified_at: found.email_verified_at ?? now })
      } else {
        if (found.pending_email === null || normalizeEmail(found.pending_email) !== found.token_email) return false
        await applyPendingEmail(trx, found, now)
        await recordAuditEvent(trx, request, { ...event, type: 'email_change' }, now)
      }
      await recordAuditEvent(trx, request, { ...event, type: 'email_verified' }, now)
      return true
    })
    if (!done) throw invalidLinkToken()
    return { message: 'Email verified' }
  })
}

/** The confirmed new address replaces the old one; the unique index decides a race for it. */
async function applyPendingEmail (trx: Parameters<typeof updateUser>[0], found: UsableToken, now: string): Promise<void> {
  try {
    await trx.updateTable('users').set({
      email: found.pending_email!,
      email_normalized: found.token_email!,
      email_verified_at: now,
      pending_email: null,
      updated_at: now
    }).where('id', '=', found.id).execute()
  } catch (error) {
    if (isUniqueViolation(error)) throw errors.badRequest('Email already registered')
    throw error
  }
  await voidAccountTokens(trx, found.id, { emailNormalized: found.email_normalized }, now)
}

export default accountRoutes
