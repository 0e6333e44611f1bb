import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { isSuspended } from '../admin/account-status.js'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { AppError, errors } from '../errors.js'
import { normalizeEmail } from '../users/identity.js'
import { findUserForLogin, updateUser, type LoginUser } from '../users/users.queries.js'
import { hashRefreshToken, newRefreshToken } from './refresh-tokens.js'
import { insertRefreshToken, insertSession, recordLogin } from './sessions.queries.js'

// The login flow as named steps, read top to bottom by POST /users/login:
//   1. checkCredentials: lockout, account look-up, password (the only step a stranger can reach)
//   2. checkAccountState: may this account log in now (not suspended, verified email, ...)
//   3. startSession: the session row, its refresh token, the token pair
// Each step throws the answer that ends the login; none reveals more than the one before it.

const iso = (ms: number) => new Date(ms).toISOString()

export interface TokenPair {
  access_token: string
  token_type: 'bearer'
  expires_in: number
  refresh_token: string
}

/** Sliding expiry, never past the session's absolute lifetime. */
export function sessionExpiry (app: FastifyInstance, createdAt: string, now: number): string {
  return iso(Math.min(now + app.config.refreshTokenTtl * 1000, Date.parse(createdAt) + app.config.sessionMaxAge * 1000))
}

/**
 * expires_in counts from the request's own clock reading (`now`), not a later one: a fresh
 * token always says its full ACCESS_TOKEN_TTL (a database commit that ends in the next second
 * made it one less), a pair replayed within the refresh grace says what is left of it.
 */
export function tokenPair (app: FastifyInstance, userId: number, sessionId: string, refreshToken: string, issuedAt: number, now: number): TokenPair {
  return {
    access_token: app.tokens.sign(userId, sessionId, issuedAt),
    token_type: 'bearer',
    expires_in: Math.max(0, Math.floor(issuedAt / 1000) + app.config.accessTokenTtl - Math.floor(now / 1000)),
    refresh_token: refreshToken
  }
}

/**
 * Step 1. The lockout reserves the attempt before the password is checked; an unknown email
 * costs the same argon2id work as a known one, and both fail with the same 401. A legacy
 * hash is replaced by argon2id once the password is known to be right.
 */
export async function checkCredentials (app: FastifyInstance, request: FastifyRequest, credentials: { email: string, password: string }): Promise<LoginUser> {
  const { email, password } = credentials
  const emailNormalized = normalizeEmail(email)
  const retryAfter = await app.lockout.begin(emailNormalized)
  if (retryAfter > 0) {
    app.metrics.loginAttempts.inc({ outcome: 'locked' })
    // Same answer whether or not the account exists.
    throw new AppError(429, `Too many failed logins for this account; try again in ${retryAfter} seconds`, { 'retry-after': String(retryAfter) })
  }

  // The attempt now holds a reservation in the lockout: it ends in a verdict, or is given back.
  let user: LoginUser | undefined
  let check = { ok: false, needsRehash: false }
  try {
    user = await findUserForLogin(app.db.kysely, emailNormalized)
    if (user === undefined) await app.passwords.verifyDummy(password)
    else check = await app.passwords.verify(user.hashed_password, password)
  } catch (error) {
    await app.lockout.release(emailNormalized)
    throw error
  }
  if (user === undefined || !check.ok) {
    const now = iso(app.now())
    app.metrics.loginAttempts.inc({ outcome: 'failure' })
    const failure = await app.lockout.failure(emailNormalized)
    await recordAuditEvent(app.db.kysely, request, { type: 'login', outcome: 'failure', userId: user?.id, detail: { reason: 'invalid_credentials' } }, now)
    if (failure.locked) {
      app.metrics.lockouts.inc()
      await recordAuditEvent(app.db.kysely, request, { type: 'lockout', outcome: 'success', userId: user?.id, detail: { until: iso(failure.lockedUntil) } }, now)
      request.log.warn({ userId: user?.id }, 'account locked after repeated failed logins')
    }
    throw errors.invalidCredentials()
  }
  await app.lockout.success(emailNormalized)
  if (check.needsRehash) await upgradeHash(app, request, user.id, password)
  return user
}

/** Legacy bcrypt (or outdated argon2 parameters) becomes a fresh argon2id hash; a failure here must not fail the login. */
async function upgradeHash (app: FastifyInstance, request: FastifyRequest, userId: number, password: string): Promise<void> {
  try {
    await updateUser(app.db.kysely, userId, { hashed_password: await app.passwords.hash(password) })
    request.log.info({ userId }, 'password hash upgraded to argon2id')
  } catch (error) {
    request.log.warn({ err: error, userId }, 'password hash upgrade failed')
  }
}

/**
 * Step 2. Runs only after the password was right, so its answers tell nothing to someone who
 * does not know it.
 */
export async function checkAccountState (app: FastifyInstance, request: FastifyRequest, user: LoginUser): Promise<void> {
  if (isSuspended(user, app.now())) {
    await refuseLogin(app, request, user, 'suspended', errors.accountSuspended(user.suspended_until))
  }
  if (app.config.emailVerification === 'required' && user.email_verified_at === null) {
    await refuseLogin(app, request, user, 'email_not_verified', errors.forbidden('Email not verified'))
  }
}

async function refuseLogin (app: FastifyInstance, request: FastifyRequest, user: LoginUser, reason: string, error: AppError): Promise<never> {
  app.metrics.loginAttempts.inc({ outcome: 'refused' })
  await recordAuditEvent(app.db.kysely, request, { type: 'login', outcome: 'failure', userId: user.id, detail: { reason } }, iso(app.now()))
  throw error
}

/**
 * Step 3. The session, its first refresh token, the login's time and its audit event commit
 * together. The account's row is written (and so locked) first: a suspension committed since
 * step 2 is seen here and refused, and one that commits after this revokes the new session.
 */
export async function startSession (app: FastifyInstance, request: FastifyRequest, user: LoginUser): Promise<TokenPair> {
  const now = app.now()
  const sessionId = randomBytes(18).toString('base64url')
  const refreshToken = newRefreshToken()
  await app.db.kysely.transaction().execute(async (trx) => {
    const state = await recordLogin(trx, user.id, iso(now))
    // Deleted since step 1: the same answer as any unknown account.
    if (state === undefined) throw errors.invalidCredentials()
    if (isSuspended(state, now)) throw errors.accountSuspended(state.suspended_until)
    await insertSession(trx, {
      id: sessionId,
      user_id: user.id,
      created_at: iso(now),
      authenticated_at: iso(now),
      last_used_at: iso(now),
      expires_at: sessionExpiry(app, iso(now), now),
      user_agent: request.headers['user-agent']?.slice(0, 512) ?? null,
      ip: request.ip
    })
    await insertRefreshToken(trx, hashRefreshToken(refreshToken), sessionId, iso(now))
    await recordAuditEvent(trx, request, { type: 'login', outcome: 'success', userId: user.id, actorId: user.id, detail: { session_id: sessionId } }, iso(now))
  })
  request.log.info({ userId: user.id }, 'user logged in')
  app.metrics.loginAttempts.inc({ outcome: 'success' })
  return tokenPair(app, user.id, sessionId, refreshToken, now, now)
}
