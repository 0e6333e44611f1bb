import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { RegistrationResponseJSON } from '@simplewebauthn/server'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { checkAccountState, startSession } from '../auth/login.js'
import { assertRecentLogin } from '../auth/recent-login.js'
import { lowerUserSessions, revokePasskeySessions, revokeUserSessions, setSessionAssurance } from '../auth/sessions.queries.js'
import type { Database } from '../db/database.js'
import { AppError } from '../errors.js'
import { findUserForLoginById } from '../users/users.queries.js'
import { AccountRefused, errorResponses, TokenPair } from '../users/users.schemas.js'
import { amrEntry, assertSecondFactor, parseAmr } from './assurance.js'
import { syncMfaEnabled } from './factors.js'
import { deleteChallenges, deleteRecoveryCodes, replaceRecoveryCodes } from './mfa.queries.js'
import { queueMfaNotice } from './notices.js'
import { checkPasskey } from './passkey-login.js'
import { deletePasskey, insertPasskey, insertWebauthnChallenge, listPasskeys, takeWebauthnChallenge } from './passkeys.queries.js'
import {
  AuthenticationOptions, PasskeyCreate, PasskeyCreated, PasskeyIdParams, PasskeyLoginRequest, PasskeyPublic, RegistrationOptions
} from './passkeys.schemas.js'
import { freshRecoveryCodes } from './recovery-codes.js'
import {
  authenticationOptions, CEREMONY_TTL_MS, challengeOf, hashChallenge, newUserHandle, registrationOptions, verifyRegistration,
  type VerifiedCredential
} from './webauthn.js'

// Passkeys of the caller's own account, and the passkey login. Adding or removing one is a
// factor change: a recent login, aal2 when the account has a second factor, and the session
// changes, notice email and audit event in the change's transaction.

/** Enough for every device a person owns; a bound on what one account can store. */
export const MAX_PASSKEYS = 20

const authenticated = { security: [{ bearerAuth: [] }] }
const iso = (ms: number) => new Date(ms).toISOString()

/** "Passkey added 2026-03-02" when the person gave no name. */
const defaultName = (now: number) => `Passkey added ${iso(now).slice(0, 10)}`

/**
 * Stores a verified passkey for the caller, in the caller's transaction. When it is the
 * account's first second factor, it does what confirming TOTP does: this session at aal2 (and
 * marked as this passkey's), every other session ended, recovery codes made (returned once).
 */
async function addPasskey (app: FastifyInstance, request: FastifyRequest, trx: Kysely<Database>, credential: VerifiedCredential, userHandle: string, name: string, now: number) {
  const { user } = request
  const before = await trx.selectFrom('users').select('mfa_enabled').where('id', '=', user.id).executeTakeFirstOrThrow()
  const count = await trx.selectFrom('passkeys').select((eb) => eb.fn.countAll<number>().as('count')).where('user_id', '=', user.id).executeTakeFirstOrThrow()
  if (Number(count.count) >= MAX_PASSKEYS) throw new AppError(409, `This account has ${MAX_PASSKEYS} passkeys, the most it may have: remove one first`)
  const passkey = await insertPasskey(trx, { userId: user.id, ...credential, userHandle, name, now: iso(now) })
  const mfaTurnedOn = before.mfa_enabled === 0 && await syncMfaEnabled(trx, user.id)
  let recoveryCodes: string[] | undefined
  let revoked = 0
  if (mfaTurnedOn) {
    const session = await trx.selectFrom('sessions').select('amr').where('id', '=', user.session_id).executeTakeFirstOrThrow()
    await setSessionAssurance(trx, user.session_id, 'aal2', JSON.stringify([...parseAmr(session.amr), amrEntry('webauthn', now)]), passkey.id)
    revoked = await revokeUserSessions(trx, user.id, iso(now), user.session_id)
    const fresh = freshRecoveryCodes(user.id)
    await replaceRecoveryCodes(trx, user.id, fresh.hashes, iso(now))
    recoveryCodes = fresh.codes
  }
  await queueMfaNotice(app, trx, 'passkey_added', user, iso(now), { name, mfa_turned_on: mfaTurnedOn })
  await recordAuditEvent(trx, request, {
    type: 'passkey_added',
    outcome: 'success',
    userId: user.id,
    actorId: user.id,
    detail: { passkey_id: passkey.id, aaguid: credential.aaguid, device_type: credential.deviceType, mfa_turned_on: mfaTurnedOn, sessions_revoked: revoked }
  }, iso(now))
  return { ...passkey, ...(recoveryCodes && { recovery_codes: recoveryCodes }) }
}

/**
 * Removes one of the caller's passkeys in the caller's transaction: the sessions it signed in
 * end (this one too, if it was one of them); when it was the account's last second factor, the
 * recovery codes go and every session drops to aal1, as when TOTP is turned off. Undefined when
 * the caller has no such passkey.
 */
async function removePasskey (app: FastifyInstance, request: FastifyRequest, trx: Kysely<Database>, passkeyId: number, now: number) {
  const { user } = request
  const name = await deletePasskey(trx, user.id, passkeyId)
  if (name === undefined) return undefined
  const revoked = await revokePasskeySessions(trx, user.id, passkeyId, iso(now))
  const mfaTurnedOff = !await syncMfaEnabled(trx, user.id)
  let lowered = 0
  if (mfaTurnedOff) {
    await deleteRecoveryCodes(trx, user.id)
    await deleteChallenges(trx, user.id)
    lowered = await lowerUserSessions(trx, user.id)
  }
  await queueMfaNotice(app, trx, 'passkey_removed', user, iso(now), { name, mfa_turned_off: mfaTurnedOff })
  await recordAuditEvent(trx, request, {
    type: 'passkey_removed',
    outcome: 'success',
    userId: user.id,
    actorId: user.id,
    detail: { passkey_id: passkeyId, mfa_turned_off: mfaTurnedOff, sessions_revoked: revoked, sessions_lowered: lowered }
  }, iso(now))
  return { revoked }
}

const passkeysRoutes: FastifyPluginAsyncTypebox = async (app) => {
  const { config } = app
  const rp = config.webauthn
  // The passkey login is a login: the per-address limit of POST /users/login, each route counted apart.
  const loginLimit = { rateLimit: app.ipLimit(config.loginIpLimit) }
  const unavailable = 'Passkeys are not available on this server: its WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS do not fit PUBLIC_URL'
  const assertAvailable = () => {
    if (rp.origins.length === 0) throw new AppError(503, unavailable)
  }
  if (rp.problem !== undefined) app.log.warn(rp.problem)

  app.post('/users/me/passkeys/options', {
    onRequest: app.authenticate,
    schema: {
      tags: ['passkeys'],
      operationId: 'startPasskeyRegistration',
      summary: 'Start adding a passkey: the options for navigator.credentials.create()',
      description: 'Needs a login within REAUTH_WINDOW, and an aal2 session when the account has a second factor. ' +
        'The challenge works once, within 5 minutes, for this session; asking again replaces it. ' +
        'Finish with POST /users/me/passkeys.',
      ...authenticated,
      response: { 200: RegistrationOptions, ...errorResponses({ 401: 'Missing or invalid token', 403: 'A recent login is required, or this session needs a second factor', 409: `The account has ${MAX_PASSKEYS} passkeys already`, 503: 'Passkeys are not configured on this server' }) }
    }
  }, async (request) => {
    const { user } = request
    assertAvailable()
    assertRecentLogin(app, user, 'Recent login required: log in again to add a passkey')
    assertSecondFactor(user)
    const existing = await listPasskeys(app.db.kysely, user.id)
    if (existing.length >= MAX_PASSKEYS) throw new AppError(409, `This account has ${MAX_PASSKEYS} passkeys, the most it may have: remove one first`)
    // One user handle per account, kept on its passkeys: an authenticator that already holds a
    // passkey for it replaces that one rather than adding a second.
    const userHandle = existing[0]?.user_handle ?? newUserHandle()
    const options = await registrationOptions(rp, {
      userHandle,
      userName: user.email,
      userDisplayName: user.username,
      exclude: existing.map((passkey) => ({ credentialId: passkey.credential_id, transports: JSON.parse(passkey.transports) as string[] }))
    })
    const now = app.now()
    await insertWebauthnChallenge(app.db.kysely, {
      challengeHash: hashChallenge(options.challenge),
      ceremony: 'registration',
      userId: user.id,
      sessionId: user.session_id,
      userHandle,
      now: iso(now),
      expiresAt: iso(now + CEREMONY_TTL_MS)
    })
    return options
  })

  app.post('/users/me/passkeys', {
    onRequest: app.authenticate,
    schema: {
      tags: ['passkeys'],
      operationId: 'addPasskey',
      summary: 'Finish adding a passkey: the browser\'s response to the registration options, and a name',
      description: 'The passkey must verify the user (PIN or biometric). When it is the account\'s first second factor, ' +
        'this session becomes aal2, every other session ends, and the answer carries 10 recovery codes, shown this once. ' +
        'A notice is emailed.',
      ...authenticated,
      body: PasskeyCreate,
      response: { 201: PasskeyCreated, ...errorResponses({ 400: 'Invalid data, an invalid, used or expired challenge, or a response that does not verify (the detail says why)', 401: 'Missing or invalid token', 403: 'This session needs a second factor', 409: 'The passkey is registered already, or the account has the most passkeys it may have' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    assertSecondFactor(user)
    const response = request.body.response as RegistrationResponseJSON
    const challenge = challengeOf(response)
    const now = app.now()
    // Used up before anything is verified: a response works once, even a wrong one.
    const issued = await takeWebauthnChallenge(app.db.kysely, hashChallenge(challenge))
    if (issued === undefined || issued.ceremony !== 'registration' || issued.user_id !== user.id || issued.session_id !== user.session_id ||
      issued.user_handle === null || Date.parse(issued.expires_at) <= now) {
      throw new AppError(400, 'Invalid or expired passkey challenge: start adding the passkey again')
    }
    const credential = await verifyRegistration(rp, response, challenge)
    const name = request.body.name?.trim() || defaultName(now)
    const created = await app.db.kysely.transaction().execute((trx) => addPasskey(app, request, trx, credential, issued.user_handle!, name, now))
    request.log.info({ userId: user.id, passkeyId: created.id }, 'passkey added')
    return reply.code(201).send(created)
  })

  app.get('/users/me/passkeys', {
    onRequest: app.authenticate,
    schema: {
      tags: ['passkeys'],
      operationId: 'listMyPasskeys',
      summary: 'List your passkeys, oldest first',
      ...authenticated,
      response: { 200: Type.Array(PasskeyPublic), ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request) => {
    const { user } = request
    const rows = await listPasskeys(app.db.kysely, user.id)
    const session = await app.db.kysely.selectFrom('sessions').select('passkey_id').where('id', '=', user.session_id).executeTakeFirst()
    return rows.map((row) => ({
      id: row.id,
      name: row.name,
      created_at: row.created_at,
      last_used_at: row.last_used_at,
      device_type: row.device_type,
      backed_up: row.backed_up !== 0,
      transports: JSON.parse(row.transports) as string[],
      aaguid: row.aaguid,
      current: session?.passkey_id === row.id
    }))
  })

  app.delete('/users/me/passkeys/:passkey_id', {
    onRequest: app.authenticate,
    // Only plain digits name a passkey ("1e3" and "0x10" would coerce to numbers).
    preValidation: async (request) => {
      const raw = (request.params as { passkey_id?: unknown }).passkey_id
      if (typeof raw === 'string' && !/^[0-9]+$/.test(raw)) throw new AppError(400, 'passkey_id: must be a positive whole number written in digits')
    },
    schema: {
      tags: ['passkeys'],
      operationId: 'removePasskey',
      summary: 'Remove one of your passkeys; the sessions it signed in end',
      description: 'Needs a login within REAUTH_WINDOW and an aal2 session (an account with a passkey has a second factor). ' +
        'When it was the account\'s last second factor, the recovery codes stop working and every session drops to aal1. A notice is emailed.',
      ...authenticated,
      params: PasskeyIdParams,
      response: { 204: { type: 'null', description: 'Removed' }, ...errorResponses({ 400: 'Invalid passkey id', 401: 'Missing or invalid token', 403: 'A recent login is required, or this session needs a second factor', 404: 'No such passkey of yours' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    assertRecentLogin(app, user, 'Recent login required: log in again to remove a passkey')
    assertSecondFactor(user)
    const now = app.now()
    const removed = await app.db.kysely.transaction().execute((trx) => removePasskey(app, request, trx, request.params.passkey_id, now))
    if (removed === undefined) throw new AppError(404, 'Passkey not found')
    request.log.info({ userId: user.id, passkeyId: request.params.passkey_id }, 'passkey removed')
    return reply.code(204).send()
  })

  app.post('/users/login/passkey/options', {
    config: loginLimit,
    schema: {
      tags: ['auth'],
      operationId: 'startPasskeyLogin',
      summary: 'Start a passkey login: the options for navigator.credentials.get() (no username needed)',
      description: 'The browser offers the passkeys it holds for this site. The challenge works once, within 5 minutes. ' +
        'Finish with POST /users/login/passkey. No body.',
      security: [],
      response: { 200: AuthenticationOptions, ...errorResponses({ 429: 'Too many requests from your address; see Retry-After', 503: 'Passkeys are not configured on this server' }) }
    }
  }, async () => {
    assertAvailable()
    const options = await authenticationOptions(rp)
    const now = app.now()
    await insertWebauthnChallenge(app.db.kysely, {
      challengeHash: hashChallenge(options.challenge),
      ceremony: 'authentication',
      userId: null,
      sessionId: null,
      userHandle: null,
      now: iso(now),
      expiresAt: iso(now + CEREMONY_TTL_MS)
    })
    return options
  })

  app.post('/users/login/passkey', {
    config: loginLimit,
    schema: {
      tags: ['auth'],
      operationId: 'loginPasskey',
      summary: 'Log in with a passkey: the browser\'s response to the login options; returns the token pair at aal2',
      description: 'A passkey with user verification is a multi-factor authenticator (NIST SP 800-63B): the session is aal2 ' +
        'with amr [{"method": "webauthn"}], and counts as a fresh login for REAUTH_WINDOW. The same account rules as ' +
        'POST /users/login apply (e.g. 403 "Email not verified" with EMAIL_VERIFICATION=required). Also how a client ' +
        'completes a password login answered with "MFA required" whose methods include "passkey".',
      security: [],
      body: PasskeyLoginRequest,
      response: {
        200: TokenPair,
        ...errorResponses({ 400: 'Invalid data', 401: 'An invalid, used or expired challenge, an unknown passkey, or a response that does not verify (the detail says why)', 429: 'Too many requests from your address; see Retry-After' }),
        403: AccountRefused
      }
    }
  }, async (request) => {
    const { userId, assurance } = await checkPasskey(app, request, request.body)
    const user = await findUserForLoginById(app.db.kysely, userId)
    if (user === undefined) throw new AppError(401, 'This passkey is not registered here (it may have been removed)', { 'www-authenticate': 'Bearer' })
    await checkAccountState(app, request, user)
    return startSession(app, request, user, assurance)
  })
}

export default passkeysRoutes
