import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { startSession } from '../auth/login.js'
import { assertRecentLogin } from '../auth/recent-login.js'
import { lowerUserSessions, revokeUserSessions, setSessionAssurance } from '../auth/sessions.queries.js'
import type { Database } from '../db/database.js'
import { AppError } from '../errors.js'
import { errorResponses, TokenPair } from '../users/users.schemas.js'
import { amrEntry, assertSecondFactor, parseAmr } from './assurance.js'
import { anyCodeInput, guardCodeCheck, spendCode, totpInput } from './codes.js'
import { countPasskeys, syncMfaEnabled } from './factors.js'
import { completeMfaLogin } from './mfa-login.js'
import { activateTotp, countRecoveryCodesLeft, deleteChallenges, deleteRecoveryCodes, deleteTotp, findTotp, insertPendingTotp, replaceRecoveryCodes } from './mfa.queries.js'
import { MfaLoginRequest, MfaStatus, RecoveryCodes, TotpCode, TotpEnrollment, TotpRemoval } from './mfa.schemas.js'
import { queueMfaNotice } from './notices.js'
import { freshRecoveryCodes } from './recovery-codes.js'
import { open, seal, totpSecretContext, type MfaKeyring } from './secret-box.js'
import { matchTotpStep, newTotpSecret, otpauthUrl, qrSvg, toBase32 } from './totp.js'

// Second factors of the caller's own account (TOTP, recovery codes) and the second step of a
// login. Every change to a factor checks assertSecondFactor first and commits with its session
// changes, notice email and audit event in one transaction.

const ENROLLMENT_TTL_MS = 10 * 60_000
const authenticated = { security: [{ bearerAuth: [] }] }
const iso = (ms: number) => new Date(ms).toISOString()
const invalidCode = () => new AppError(400, 'Invalid code')
const totpIsOn = () => new AppError(409, 'TOTP is already on for this account; remove it first to set up another')

/**
 * Confirms the caller's pending enrollment with the time step of its first code, in the
 * caller's transaction: TOTP on, a fresh set of recovery codes, this session at aal2 and every
 * other session ended, a notice, an audit event. The codes, or undefined when another request
 * confirmed (or the enrollment expired) first.
 */
async function turnTotpOn (app: FastifyInstance, request: FastifyRequest, trx: Kysely<Database>, step: number, now: number): Promise<string[] | undefined> {
  const { user } = request
  if (!await activateTotp(trx, user.id, step, iso(now))) return undefined
  const fresh = freshRecoveryCodes(user.id)
  await replaceRecoveryCodes(trx, user.id, fresh.hashes, iso(now))
  await syncMfaEnabled(trx, user.id)
  const session = await trx.selectFrom('sessions').select('amr').where('id', '=', user.session_id).executeTakeFirstOrThrow()
  await setSessionAssurance(trx, user.session_id, 'aal2', JSON.stringify([...parseAmr(session.amr), amrEntry('totp', now)]))
  const revoked = await revokeUserSessions(trx, user.id, iso(now), user.session_id)
  await queueMfaNotice(app, trx, 'mfa_totp_enabled', user, iso(now))
  await recordAuditEvent(trx, request, { type: 'mfa_enabled', outcome: 'success', userId: user.id, actorId: user.id, detail: { method: 'totp', sessions_revoked: revoked } }, iso(now))
  return fresh.codes
}

/**
 * Removes the caller's TOTP (its code already spent, by `verifiedWith`) in the caller's
 * transaction: the recovery codes go with the account's last second factor, every session drops
 * to aal1, a notice, an audit event.
 */
async function turnTotpOff (app: FastifyInstance, request: FastifyRequest, trx: Kysely<Database>, verifiedWith: string, now: number): Promise<true> {
  const { user } = request
  await deleteTotp(trx, user.id)
  if (!await syncMfaEnabled(trx, user.id)) {
    await deleteRecoveryCodes(trx, user.id)
    await deleteChallenges(trx, user.id)
  }
  const lowered = await lowerUserSessions(trx, user.id)
  await queueMfaNotice(app, trx, 'mfa_totp_disabled', user, iso(now))
  await recordAuditEvent(trx, request, { type: 'mfa_disabled', outcome: 'success', userId: user.id, actorId: user.id, detail: { method: 'totp', verified_with: verifiedWith, sessions_lowered: lowered } }, iso(now))
  return true
}

const mfaRoutes: FastifyPluginAsyncTypebox<{ keyring: MfaKeyring }> = async (app, { keyring }) => {
  const { config } = app
  // Code-taking routes are limited per address as logins are.
  const codeLimit = { rateLimit: app.ipLimit(config.loginIpLimit) }

  app.get('/users/me/mfa', {
    onRequest: app.authenticate,
    schema: {
      tags: ['mfa'],
      operationId: 'getMyMfa',
      summary: 'Which second factors your account has',
      ...authenticated,
      response: { 200: MfaStatus, ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request) => {
    const { id } = request.user
    const totp = await findTotp(app.db.kysely, id)
    return {
      totp: totp?.confirmed_at != null,
      recovery_codes_left: await countRecoveryCodesLeft(app.db.kysely, id),
      passkeys: await countPasskeys(app.db.kysely, id)
    }
  })

  app.post('/users/me/mfa/totp', {
    onRequest: app.authenticate,
    schema: {
      tags: ['mfa'],
      operationId: 'startTotpEnrollment',
      summary: 'Start setting up TOTP: a new secret, its otpauth URL and QR code (not active until confirmed)',
      description: 'Needs a login within REAUTH_WINDOW. The enrollment expires after 10 minutes; ' +
        'starting again replaces it. Confirm with POST /users/me/mfa/totp/confirm.',
      ...authenticated,
      response: { 200: TotpEnrollment, ...errorResponses({ 401: 'Missing or invalid token', 403: 'A recent login is required, or this session needs a second factor', 409: 'TOTP is already on' }) }
    }
  }, async (request) => {
    const { user } = request
    assertRecentLogin(app, user, 'Recent login required: log in again to set up two-factor authentication')
    assertSecondFactor(user)
    const existing = await findTotp(app.db.kysely, user.id)
    if (existing?.confirmed_at != null) throw totpIsOn()
    const now = app.now()
    const expiresAt = iso(now + ENROLLMENT_TTL_MS)
    const secret = newTotpSecret()
    await app.db.kysely.transaction().execute(async (trx) => {
      await insertPendingTotp(trx, user.id, seal(keyring, secret, totpSecretContext(user.id)), iso(now), expiresAt)
      await recordAuditEvent(trx, request, { type: 'mfa_enrollment_started', outcome: 'success', userId: user.id, actorId: user.id, detail: { method: 'totp' } }, iso(now))
    })
    const url = otpauthUrl(secret, config.appName, user.email)
    return { secret: toBase32(secret), otpauth_url: url, qr_svg: qrSvg(url), expires_at: expiresAt }
  })

  app.post('/users/me/mfa/totp/confirm', {
    onRequest: app.authenticate,
    config: codeLimit,
    schema: {
      tags: ['mfa'],
      operationId: 'confirmTotp',
      summary: 'Turn TOTP on with a first code from the app; returns 10 recovery codes, shown this once',
      description: 'Raises this session to aal2 and ends every other session of the account. The code ' +
        'that confirms cannot be used again (nor any older one).',
      ...authenticated,
      body: TotpCode,
      response: { 200: RecoveryCodes, ...errorResponses({ 400: 'Invalid code, or no enrollment in progress (start again)', 401: 'Missing or invalid token', 403: 'This session needs a second factor', 409: 'TOTP is already on', 429: 'Too many wrong codes for this account, or requests from your address; see Retry-After' }) }
    }
  }, async (request) => {
    const { user } = request
    assertSecondFactor(user)
    const input = totpInput(request.body.code)
    const now = app.now()
    const row = await findTotp(app.db.kysely, user.id)
    if (row?.confirmed_at != null) throw totpIsOn()
    if (row === undefined || row.expires_at === null || Date.parse(row.expires_at) <= now) {
      throw new AppError(400, 'No TOTP enrollment in progress (or it expired): start again with POST /users/me/mfa/totp')
    }
    const codes = await guardCodeCheck(app, request, user.id, 'totp_confirm', async () => {
      const secret = open(keyring, { ciphertext: row.secret, keyId: row.key_id }, totpSecretContext(user.id))
      const step = matchTotpStep(secret, input.code, now, Number(row.last_step))
      if (step === undefined) return undefined
      return app.db.kysely.transaction().execute((trx) => turnTotpOn(app, request, trx, step, now))
    })
    if (codes === undefined) throw invalidCode()
    request.log.info({ userId: user.id }, 'TOTP turned on')
    return { recovery_codes: codes }
  })

  app.delete('/users/me/mfa/totp', {
    onRequest: app.authenticate,
    config: codeLimit,
    schema: {
      tags: ['mfa'],
      operationId: 'removeTotp',
      summary: 'Turn TOTP off (needs an aal2 session and a current code or a recovery code)',
      description: 'Removes the secret and, when no other second factor remains, the recovery codes; ' +
        'every session of the account drops to aal1; a notice goes to the account\'s email.',
      ...authenticated,
      body: TotpRemoval,
      response: { 204: { type: 'null', description: 'TOTP is off' }, ...errorResponses({ 400: 'Invalid code', 401: 'Missing or invalid token', 403: 'This session needs a second factor', 404: 'TOTP is not on', 429: 'Too many wrong codes for this account, or requests from your address; see Retry-After' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    assertSecondFactor(user)
    const input = anyCodeInput(request.body.code)
    const row = await findTotp(app.db.kysely, user.id)
    if (row?.confirmed_at == null) throw new AppError(404, 'TOTP is not on for this account')
    const now = app.now()
    const done = await guardCodeCheck(app, request, user.id, 'totp_remove', () => app.db.kysely.transaction().execute(async (trx) => {
      const method = await spendCode(keyring, trx, user.id, input, now)
      return method === undefined ? undefined : turnTotpOff(app, request, trx, method, now)
    }))
    if (done === undefined) throw invalidCode()
    request.log.info({ userId: user.id }, 'TOTP turned off')
    return reply.code(204).send()
  })

  app.post('/users/me/mfa/recovery-codes', {
    onRequest: app.authenticate,
    schema: {
      tags: ['mfa'],
      operationId: 'regenerateRecoveryCodes',
      summary: 'Replace your recovery codes with 10 new ones (the old ones stop working); needs an aal2 session',
      ...authenticated,
      response: { 200: RecoveryCodes, ...errorResponses({ 401: 'Missing or invalid token', 403: 'This session needs a second factor', 409: 'The account has no second factor' }) }
    }
  }, async (request) => {
    const { user } = request
    if (user.mfa_enabled === 0) throw new AppError(409, 'Turn on a second factor first: recovery codes back one up')
    assertSecondFactor(user)
    const now = iso(app.now())
    const fresh = freshRecoveryCodes(user.id)
    await app.db.kysely.transaction().execute(async (trx) => {
      await replaceRecoveryCodes(trx, user.id, fresh.hashes, now)
      await queueMfaNotice(app, trx, 'mfa_recovery_codes_regenerated', user, now)
      await recordAuditEvent(trx, request, { type: 'recovery_codes_regenerated', outcome: 'success', userId: user.id, actorId: user.id }, now)
    })
    return { recovery_codes: fresh.codes }
  })

  app.post('/users/login/mfa', {
    config: codeLimit,
    schema: {
      tags: ['auth'],
      operationId: 'loginMfa',
      summary: 'Complete a login that answered "MFA required": the mfa_token with a TOTP code or a recovery code',
      description: 'Returns the token pair at aal2. The mfa_token works once, for 5 minutes; 5 wrong codes end it. ' +
        'MFA_LOCKOUT_THRESHOLD (10) wrong codes in a row lock the account\'s second factor for MFA_LOCKOUT_DURATION (15 minutes).',
      body: MfaLoginRequest,
      response: { 200: TokenPair, ...errorResponses({ 400: 'Invalid data (send exactly one of code, recovery_code)', 401: 'Invalid code, or an invalid, expired, used or ended mfa_token', 429: 'Too many wrong codes for this account, or requests from your address; see Retry-After' }) }
    }
  }, async (request) => {
    const { userId, assurance } = await completeMfaLogin(app, request, keyring, request.body)
    return startSession(app, request, { id: userId }, assurance)
  })
}

export default mfaRoutes
