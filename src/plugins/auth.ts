import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { createSessionUserLookup, type AuthenticatedUser } from '../auth/sessions.queries.js'
import type { Passwords } from '../auth/passwords.js'
import type { Tokens } from '../auth/tokens.js'
import { errors } from '../errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    tokens: Tokens
    passwords: Passwords
    /** Now, in ms since the epoch; tests move it through buildApp overrides. */
    now: () => number
    /** onRequest hook: verifies the Bearer token and its live session, sets request.user. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>
  }
  interface FastifyRequest {
    user: AuthenticatedUser
  }
}

const BEARER = /^Bearer[ ]+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)[ ]*$/i

export interface AuthPluginOptions {
  tokens: Tokens
  passwords: Passwords
  now: () => number
}

export default fp<AuthPluginOptions>(async (app, { tokens, passwords, now }) => {
  app.decorate('tokens', tokens)
  app.decorate('passwords', passwords)
  app.decorate('now', now)
  app.decorateRequest('user', null as unknown as AuthenticatedUser)
  const findLiveSessionUser = createSessionUserLookup(app.db)

  app.decorate('authenticate', async (request: FastifyRequest) => {
    const header = request.headers.authorization
    if (header === undefined || header === '') throw errors.notAuthenticated()
    const token = BEARER.exec(header)?.[1]
    if (token === undefined) throw errors.invalidToken()
    const { userId, sessionId } = tokens.verify(token)
    const user = await findLiveSessionUser(sessionId, userId, new Date(now()).toISOString())
    if (user === undefined) throw errors.invalidToken()
    request.user = user
  })
}, { name: 'auth', dependencies: ['db'] })
