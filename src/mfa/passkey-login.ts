import type { AuthenticationResponseJSON } from '@simplewebauthn/server'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { AppError } from '../errors.js'
import { amrEntry, type Assurance } from './assurance.js'
import { findPasskeyByCredentialId, recordPasskeyUse, takeWebauthnChallenge } from './passkeys.queries.js'
import type { PasskeyLoginRequest } from './passkeys.schemas.js'
import { challengeOf, hashChallenge, reason, verifyAssertion } from './webauthn.js'

// The passkey step of a login: in place of the password (step 1) and the second factor (step 3)
// of POST /users/login, since a passkey with user verification is both: something the person
// has (the authenticator's private key) and something they are or know (the biometric or PIN
// that unlocks it), NIST SP 800-63B's multi-factor cryptographic authenticator, so aal2.
// The account-state step and the session step then run as for a password login.

const iso = (ms: number) => new Date(ms).toISOString()
const www = { 'www-authenticate': 'Bearer' }

/** Who signed in, with which passkey, at what level: for checkAccountState and startSession. */
export interface PasskeyLogin {
  userId: number
  assurance: Assurance
}

async function refusePasskey (app: FastifyInstance, request: FastifyRequest, userId: number | undefined, why: string, detail: string): Promise<never> {
  app.metrics.loginAttempts.inc({ outcome: 'failure' })
  await recordAuditEvent(app.db.kysely, request, { type: 'login', outcome: 'failure', userId, detail: { method: 'passkey', reason: why } }, iso(app.now()))
  request.log.info({ userId, reason: why }, 'passkey login refused')
  throw new AppError(401, detail, www)
}

/**
 * Checks a login's passkey assertion. The challenge is used up first, whatever follows (a
 * response works once, even a wrong one); it must be a login challenge of the last 5 minutes.
 * Then the passkey, found by its credential id, must belong to the user handle the
 * authenticator returned, and the library verifies origin, RP ID, signature, user verification
 * and the counter; the new counter is stored under the same rule, atomically.
 */
export async function checkPasskey (app: FastifyInstance, request: FastifyRequest, body: PasskeyLoginRequest): Promise<PasskeyLogin> {
  const response = body.response as AuthenticationResponseJSON
  const challenge = challengeOf(response)
  const now = app.now()
  const issued = await takeWebauthnChallenge(app.db.kysely, hashChallenge(challenge))
  if (issued === undefined || issued.ceremony !== 'authentication' || Date.parse(issued.expires_at) <= now) {
    return refusePasskey(app, request, undefined, 'challenge', 'Invalid or expired passkey challenge: start the sign-in again')
  }
  const passkey = await findPasskeyByCredentialId(app.db.kysely, response.id)
  if (passkey === undefined) return refusePasskey(app, request, undefined, 'unknown_passkey', 'This passkey is not registered here (it may have been removed)')
  // A discoverable login names its user only through the authenticator's user handle: it must
  // be the one the passkey was made for (WebAuthn Level 3, 7.2 step 6).
  if (response.response.userHandle !== passkey.user_handle) return refusePasskey(app, request, passkey.user_id, 'user_handle', 'Passkey not accepted: it does not belong to the account it names')

  let verified
  try {
    verified = await verifyAssertion(app.config.webauthn, response, challenge, passkey)
  } catch (error) {
    return refusePasskey(app, request, passkey.user_id, 'verification', `Passkey not accepted: ${reason(error)}`)
  }
  const recorded = await recordPasskeyUse(app.db.kysely, passkey.id, { counter: verified.newCounter, deviceType: verified.deviceType, backedUp: verified.backedUp, now: iso(now) })
  if (!recorded) return refusePasskey(app, request, passkey.user_id, 'counter', `Passkey not accepted: its signature counter ${verified.newCounter} is not above the last one seen`)
  return {
    userId: passkey.user_id,
    assurance: { aal: 'aal2', amr: [amrEntry('webauthn', now)], passkeyId: passkey.id }
  }
}
