import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { recordAuditEvent } from '../audit/audit.queries.js'
import { AppError } from '../errors.js'
import { errorResponses, HTTPError, Token, UserLogin } from '../users/users.schemas.js'
import { checkAccountState, checkCredentials, sessionExpiry, startSession, tokenPair } from './login.js'
import { hashRefreshToken, nextRefreshToken } from './refresh-tokens.js'
import { findRefreshToken, insertRefreshToken, markRefreshTokenUsed, revokeSession, revokeUserSessions, touchSession } from './sessions.queries.js'

const TokenPair = Type.Object({
  ...Token.properties,
  refresh_token: Type.String({ description: 'Exchange at POST /users/refresh for a new pair; single use' })
}, { title: 'TokenPair' })

const LoginRefused = Type.Object({
  ...HTTPError.properties,
  until: Type.Optional(Type.String({ format: 'date-time', description: 'When a suspension with an end ends' }))
}, {
  title: 'LoginRefused',
  description: 'Right password, but the account may not log in now: "Account suspended" (with `until` when the suspension ends by itself), or "Email not verified"',
  examples: [{ detail: 'Account suspended', until: '2026-07-01T00:00:00.000Z' }]
})

const RefreshRequest = Type.Object({
  refresh_token: Type.String({ minLength: 1, maxLength: 128 })
}, { additionalProperties: false, title: 'RefreshRequest' })

const LogoutRequest = Type.Object({
  all: Type.Optional(Type.Boolean({ description: 'End every session of the account, not only this one' }))
}, { additionalProperties: false, title: 'LogoutRequest' })

const invalidRefreshToken = () => new AppError(401, 'Invalid or expired refresh token', { 'www-authenticate': 'Bearer error="invalid_token"' })

const authRoutes: FastifyPluginAsyncTypebox<{ refreshKey: Buffer }> = async (app, { refreshKey }) => {
  const { config } = app
  const iso = (ms: number) => new Date(ms).toISOString()

  app.post('/users/login', {
    config: { rateLimit: app.ipLimit(config.loginIpLimit) },
    schema: {
      tags: ['auth'],
      operationId: 'login',
      summary: 'Log in with email and password; returns a Bearer access token and a refresh token',
      body: UserLogin,
      response: {
        200: TokenPair,
        ...errorResponses({ 400: 'Invalid data', 401: 'Incorrect email or password', 429: 'Too many attempts (per address or per account); see Retry-After', 503: 'Too many logins in progress; retry shortly' }),
        403: LoginRefused
      }
    }
  }, async (request) => {
    const user = await checkCredentials(app, request, request.body)
    await checkAccountState(app, request, user)
    return startSession(app, request, user)
  })

  app.post('/users/refresh', {
    config: { rateLimit: app.ipLimit(config.refreshIpLimit) },
    schema: {
      tags: ['auth'],
      operationId: 'refreshToken',
      summary: 'Exchange a refresh token for a new access token and refresh token (rotation)',
      description: 'Each refresh token works once. Presenting a used one again after the grace window ' +
        '(REFRESH_REUSE_GRACE) is treated as theft and ends the session.',
      body: RefreshRequest,
      response: { 200: TokenPair, ...errorResponses({ 400: 'Invalid data', 401: 'Invalid, expired, revoked or reused refresh token', 429: 'Too many requests from your address' }) }
    }
  }, async (request) => {
    const presented = request.body.refresh_token
    const presentedHash = hashRefreshToken(presented)
    const now = app.now()
    const next = nextRefreshToken(refreshKey, presented)

    const outcome = await app.db.kysely.transaction().execute(async (trx) => {
      const row = await findRefreshToken(trx, presentedHash)
      if (row === undefined || row.revoked_at !== null || Date.parse(row.expires_at) <= now) return { kind: 'invalid' as const }
      if (row.used_at === null && await markRefreshTokenUsed(trx, presentedHash, iso(now))) {
        await insertRefreshToken(trx, hashRefreshToken(next), row.session_id, iso(now))
        await touchSession(trx, row.session_id, iso(now), sessionExpiry(app, row.created_at, now))
        await recordAuditEvent(trx, request, { type: 'refresh', outcome: 'success', userId: row.user_id, actorId: row.user_id, detail: { session_id: row.session_id } }, iso(now))
        return { kind: 'rotated' as const, row, issuedAt: now }
      }
      // Already used: by a concurrent request of the same client (grace) or by a thief.
      // A request that lost the race read the row before the winner committed: re-read when the
      // winner used it, so the retry gets the pair issued then (same iat), not a new access token.
      const usedAtText = row.used_at ?? (await findRefreshToken(trx, presentedHash))?.used_at ?? null
      const usedAt = usedAtText !== null ? Date.parse(usedAtText) : now
      if (now - usedAt <= config.refreshReuseGrace * 1000) return { kind: 'rotated' as const, row, issuedAt: usedAt }
      await revokeSession(trx, row.user_id, row.session_id, iso(now))
      await recordAuditEvent(trx, request, { type: 'refresh_reuse_detected', outcome: 'failure', userId: row.user_id, detail: { session_id: row.session_id } }, iso(now))
      return { kind: 'reused' as const, row }
    })

    if (outcome.kind === 'invalid') throw invalidRefreshToken()
    if (outcome.kind === 'reused') {
      request.log.warn({ userId: outcome.row.user_id }, 'refresh token reuse detected: session revoked')
      throw new AppError(401, 'Refresh token was already used; the session has been ended. Log in again', { 'www-authenticate': 'Bearer error="invalid_token"' })
    }
    return tokenPair(app, outcome.row.user_id, outcome.row.session_id, next, outcome.issuedAt, now)
  })

  app.post('/users/logout', {
    onRequest: app.authenticate,
    // The body is optional: a bare POST (no body) logs out this session.
    preValidation: async (request) => {
      request.body ??= {}
    },
    schema: {
      tags: ['auth'],
      operationId: 'logout',
      summary: 'End this session (its tokens stop working at once), or every session with {"all": true}',
      security: [{ bearerAuth: [] }],
      body: LogoutRequest,
      response: { 204: { type: 'null', description: 'Logged out' }, ...errorResponses({ 401: 'Missing or invalid token' }) }
    }
  }, async (request, reply) => {
    const { user } = request
    const all = request.body?.all === true
    const now = iso(app.now())
    await app.db.kysely.transaction().execute(async (trx) => {
      if (all) await revokeUserSessions(trx, user.id, now)
      else await revokeSession(trx, user.id, user.session_id, now)
      await recordAuditEvent(trx, request, { type: 'logout', outcome: 'success', userId: user.id, actorId: user.id, detail: { all } }, now)
    })
    return reply.code(204).send()
  })
}

export default authRoutes
