import { Type } from '@fastify/type-provider-typebox'
import fp from 'fastify-plugin'
import { sql } from 'kysely'
import { classifyDbError } from '../db/database.js'
import { isSchemaCurrent } from '../db/migrate.js'

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Starts draining: readiness answers 503 (and responses close their connection) while the
     * server still serves, so a load balancer stops sending traffic before app.close().
     */
    beginShutdown: () => void
  }
}

const Status = Type.Object({ status: Type.Literal('ok') }, { title: 'HealthStatus' })
const Problem = Type.Object({ detail: Type.String() }, { title: 'HealthProblem' })
// The checks never refuse a well-formed request; a malformed one (invalid percent-encoding, an
// over-long path segment) is answered 400 before routing, like on every route.
const ClientError = { ...Problem, description: 'Malformed request (e.g. invalid percent-encoding in the URL)' }

/**
 * GET /health/live: the process runs and its event loop turns (no database access).
 * GET /health/ready: the database answers within its timeout and every migration is applied;
 * 503 with a detail otherwise, and from the moment shutdown begins.
 */
export default fp(async (app) => {
  let draining = false
  let pending: Promise<string | undefined> | undefined
  // A database that accepts the connection but never answers must not hang the probe.
  const limitMs = app.config.dbTimeoutMs * 2

  const checkDatabase = async (): Promise<string | undefined> => {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`Database did not answer within ${limitMs} ms`), limitMs)
    })
    const check = (async () => {
      try {
        await sql`select 1`.execute(app.db.kysely)
        return await isSchemaCurrent(app.db) ? undefined : 'Database schema is not current: run the migrations'
      } catch (error) {
        app.metrics.dbErrors.inc({ kind: classifyDbError(error) ?? 'query' })
        app.log.warn({ err: error }, 'readiness check: database unavailable')
        return 'Database unavailable'
      }
    })()
    try {
      return await Promise.race([check, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  app.decorate('beginShutdown', () => {
    draining = true
  })
  app.addHook('preClose', async () => {
    draining = true
  })
  // Callback style, not async: this runs on every response and a promise per hook adds up.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close')
    done(null, payload)
  })

  app.get('/health/live', {
    schema: {
      tags: ['operations'],
      operationId: 'liveness',
      summary: 'Liveness: 200 while the process runs',
      response: { 200: Status, '4xx': ClientError }
    }
  }, async () => ({ status: 'ok' as const }))

  app.get('/health/ready', {
    schema: {
      tags: ['operations'],
      operationId: 'readiness',
      summary: 'Readiness: 200 when the database answers and its schema is current; 503 otherwise and during shutdown',
      response: { 200: Status, '4xx': ClientError, 503: { ...Problem, description: 'Not ready: database unreachable, migrations pending, or shutting down' } }
    }
  }, async (_request, reply) => {
    if (draining) return reply.code(503).send({ detail: 'Shutting down' })
    // Probes arriving together share one check, so a flood of them costs one query.
    pending ??= checkDatabase().finally(() => { pending = undefined })
    const problem = await pending
    if (draining) return reply.code(503).send({ detail: 'Shutting down' })
    if (problem !== undefined) return reply.code(503).send({ detail: problem })
    return { status: 'ok' as const }
  })
}, { name: 'health', dependencies: ['db', 'metrics'] })
