import { createHash, randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { AppError } from '../errors.js'
import { findUserById } from '../users/users.queries.js'
import { amrEntry, type Assurance } from './assurance.js'
import { guardCodeCheck, recoveryInput, spendCode, totpInput } from './codes.js'
import { listMfaMethods, type MfaMethod } from './factors.js'
import { consumeChallenge, countChallengeFailure, countRecoveryCodesLeft, findLiveChallenge, insertChallenge } from './mfa.queries.js'
import type { MfaLoginRequest } from './mfa.schemas.js'
import { queueMfaNotice } from './notices.js'
import type { MfaKeyring } from './secret-box.js'

// The second step of a login. The password step issues a challenge: a random mfa_token (only
// its SHA-256 is stored), good for 5 minutes, used once, ended by 5 wrong codes. Meeting it
// with a code starts the session at aal2.

export const CHALLENGE_TTL_MS = 5 * 60_000
export const CHALLENGE_MAX_FAILURES = 5

const iso = (ms: number) => new Date(ms).toISOString()
const hashToken = (token: string) => createHash('sha256').update(token).digest('base64url')
const www = { 'www-authenticate': 'Bearer' }
const invalidChallenge = () => new AppError(401, 'Invalid or expired mfa_token: log in again', www)

/** Right password, second factor owed: a challenge and the methods that can meet it. */
export async function issueMfaChallenge (app: FastifyInstance, request: FastifyRequest, userId: number): Promise<{ mfa_token: string, methods: MfaMethod[] }> {
  const token = randomBytes(32).toString('base64url')
  const now = app.now()
  await app.db.kysely.transaction().execute(async (trx) => {
    await insertChallenge(trx, { tokenHash: hashToken(token), userId, now: iso(now), expiresAt: iso(now + CHALLENGE_TTL_MS) })
    await recordAuditEvent(trx, request, { type: 'mfa_challenge', outcome: 'success', userId }, iso(now))
  })
  return { mfa_token: token, methods: await listMfaMethods(app.db.kysely, userId) }
}

/**
 * Meets a challenge: the code is spent and the challenge used up in one transaction (so neither
 * is spent without the other); a wrong code counts against the challenge and the account.
 * Returns who logged in and at what level, for startSession.
 */
export async function completeMfaLogin (app: FastifyInstance, request: FastifyRequest, keyring: MfaKeyring, body: MfaLoginRequest): Promise<{ userId: number, assurance: Assurance }> {
  if ((body.code === undefined) === (body.recovery_code === undefined)) throw new AppError(400, 'Send the mfa_token with either code or recovery_code')
  const input = body.code !== undefined ? totpInput(body.code) : recoveryInput(body.recovery_code!)
  const now = app.now()
  const challenge = await findLiveChallenge(app.db.kysely, hashToken(body.mfa_token), iso(now), CHALLENGE_MAX_FAILURES)
  if (challenge === undefined) throw invalidChallenge()
  const userId = challenge.user_id

  const method = await guardCodeCheck(app, request, userId, 'login', () => app.db.kysely.transaction().execute(async (trx) => {
    const spent = await spendCode(keyring, trx, userId, input, now)
    if (spent === undefined) return undefined
    // Lost a race for the challenge: the rollback gives the code back.
    if (!await consumeChallenge(trx, challenge.id, iso(now))) throw invalidChallenge()
    if (spent === 'recovery_code') {
      const user = await findUserById(trx, userId)
      if (user !== undefined) await queueMfaNotice(app, trx, 'mfa_recovery_code_used', user, iso(now), { codes_left: await countRecoveryCodesLeft(trx, userId) })
    }
    return spent
  }))

  if (method === undefined) {
    const failures = await countChallengeFailure(app.db.kysely, challenge.id)
    if (failures >= CHALLENGE_MAX_FAILURES) throw new AppError(401, 'Too many wrong codes: log in again', www)
    throw new AppError(401, input.method === 'totp' ? 'Invalid code' : 'Invalid recovery code', www)
  }
  return {
    userId,
    assurance: { aal: 'aal2', amr: [amrEntry('pwd', Date.parse(challenge.created_at)), amrEntry(method, now)] }
  }
}
