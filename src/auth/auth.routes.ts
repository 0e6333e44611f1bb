import { randomBytes } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { errors } from '../errors.js'
import { normalizeEmail } from '../users/identity.js'
import { findUserForLogin, updateUser } from '../users/users.queries.js'
import { errorResponses, Token, UserLogin } from '../users/users.schemas.js'
import { insertSession } from './sessions.queries.js'

const authRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.post('/users/login', {
    schema: {
      tags: ['auth'],
      operationId: 'login',
      summary: 'Log in with email and password; returns a Bearer access token',
      body: UserLogin,
      response: { 200: Token, ...errorResponses({ 400: 'Invalid data', 401: 'Incorrect email or password' }) }
    }
  }, async (request) => {
    const { email, password } = request.body
    const user = await findUserForLogin(app.db.kysely, normalizeEmail(email))
    if (user === undefined) {
      // Same work as a real check, so response time does not reveal whether the email exists.
      await app.passwords.verifyDummy(password)
      throw errors.invalidCredentials()
    }
    const check = await app.passwords.verify(user.hashed_password, password)
    if (!check.ok) throw errors.invalidCredentials()

    const now = new Date(app.now()).toISOString()
    if (check.needsRehash) {
      // Legacy bcrypt (or outdated argon2 parameters): replace with a fresh argon2id hash now
      // that we hold the plaintext. A failure here must not fail the login.
      try {
        await updateUser(app.db.kysely, user.id, { hashed_password: await app.passwords.hash(password) })
        request.log.info({ userId: user.id }, 'password hash upgraded to argon2id')
      } catch (error) {
        request.log.warn({ err: error, userId: user.id }, 'password hash upgrade failed')
      }
    }

    const sessionId = randomBytes(18).toString('base64url')
    const ttl = app.config.accessTokenTtl
    await insertSession(app.db.kysely, {
      id: sessionId,
      user_id: user.id,
      created_at: now,
      authenticated_at: now,
      last_used_at: now,
      expires_at: new Date(app.now() + ttl * 1000).toISOString(),
      user_agent: request.headers['user-agent']?.slice(0, 512) ?? null,
      ip: request.ip
    })
    request.log.info({ userId: user.id }, 'user logged in')
    return { access_token: app.tokens.sign(user.id, sessionId), token_type: 'bearer' as const, expires_in: ttl }
  })
}

export default authRoutes
