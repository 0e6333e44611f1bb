import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import accountRoutes from './account/account.routes.js'
import dataExportRoutes from './account/data-export.routes.js'
import accountPages from './account-pages/account-pages.routes.js'
import adminRoutes from './admin/admin.routes.js'
import auditRoutes from './audit/audit.routes.js'
import authRoutes from './auth/auth.routes.js'
import { createPasswords, type Passwords } from './auth/passwords.js'
import { rotationKey } from './auth/refresh-tokens.js'
import sessionsRoutes from './auth/sessions.routes.js'
import { createTokens } from './auth/tokens.js'
import { resolveJwtSecret, resolveMfaKey, type Config } from './config.js'
import { createDb, type Db } from './db/database.js'
import { readableDataFilesWarning, sqliteFiles } from './db/file-modes.js'
import { migrateToLatest } from './db/migrate.js'
import emailPlugin from './email/email.plugin.js'
import { linkKey } from './email/links.js'
import { loadTemplates } from './email/templates.js'
import { registerErrorHandler } from './errors.js'
import { sharedBatchedStdout } from './log-destination.js'
import mfaAdminRoutes from './mfa/mfa-admin.routes.js'
import mfaRoutes from './mfa/mfa.routes.js'
import passkeysRoutes from './mfa/passkeys.routes.js'
import { createKeyring } from './mfa/secret-box.js'
import afterResponsePlugin from './plugins/after-response.js'
import adminConsolePlugin from './plugins/admin-console.js'
import healthPlugin from './plugins/health.js'
import metricsPlugin, { createMetrics } from './plugins/metrics.js'
import requestIdPlugin, { requestIdFor } from './plugins/request-id.js'
import authPlugin from './plugins/auth.js'
import dbPlugin from './plugins/db.js'
import docsPlugin from './plugins/docs.js'
import limitsPlugin from './plugins/limits.js'
import corsPlugin from './plugins/cors.js'
import securityHeaders, { strictTransportSecurity } from './plugins/security-headers.js'
import usersRoutes from './users/users.routes.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

/** What tests (and embedders) may swap: the clock, an already-open database, the logger. */
export interface AppOverrides {
  now?: () => number
  db?: Db
  logger?: FastifyServerOptions['logger']
  passwords?: Passwords
}

/**
 * Two validators: bodies are never coerced ("123" is not a number, 123 is not a string);
 * path and query strings are, since they are text by nature. Unknown body fields are
 * dropped (FastAPI's behaviour), never applied. An unknown query parameter, where a schema
 * closes its query, is a 400: a misspelt filter must not silently widen a result.
 */
function createValidatorCompiler () {
  const options = { useDefaults: true, allErrors: true, strict: false } as const
  const bodyAjv = addFormats.default(new Ajv({ ...options, removeAdditional: true, coerceTypes: false }))
  const textAjv = addFormats.default(new Ajv({ ...options, removeAdditional: false, coerceTypes: true }))
  return ({ schema, httpPart }: { schema: object, httpPart?: string }) =>
    (httpPart === 'body' ? bodyAjv : textAjv).compile(schema)
}

// Never in a log line: at the top level, or one level down in the containers a log call or an
// error carries (an error's own fields, a logged body, headers, query or params). Explicit paths,
// not wildcards: a "*" path is checked against every key of every line and cost ~10 us a line, a
// fifth of the GET throughput with REQUEST_LOG=all. No path under req or res: their serializers
// (below, and Fastify's {statusCode}) keep no headers at all, and a path there made pino copy
// every request line's req object to redact it (~5% of the GET throughput).
const SECRET_LOG_KEYS = ['password', 'hashed_password', 'access_token', 'refresh_token', 'token', 'secret', 'authorization', 'cookie', 'set-cookie']
const SECRET_LOG_CONTAINERS = ['', 'err', 'error', 'body', 'headers', 'query', 'params', 'user', 'detail']
const SECRET_LOG_PATHS = SECRET_LOG_CONTAINERS.flatMap((container) => SECRET_LOG_KEYS.map((key) => `${container}["${key}"]`))
const SECRET_QUERY_PARAM = /([?&][^=&#]*(?:pass|token|secret|auth|key|hash)[^=&#]*=)[^&#]*/gi

export function loggerOptions (config: Config): FastifyServerOptions['logger'] {
  return {
    level: config.logLevel,
    // Synchronous writes to stdout, one per turn of the event loop. pino's default destination
    // is asynchronous: when the event loop is saturated, lines are produced faster than its
    // one-write-at-a-time queue drains, and the queue grew the heap by ~3.5 MB/s under a GET load
    // (RSS 1.4 GB after 5 minutes). A synchronous write slows the request instead, so memory
    // stays flat; batching the turn's lines makes that one system call for many lines.
    stream: sharedBatchedStdout(),
    redact: {
      paths: SECRET_LOG_PATHS,
      censor: '[redacted]'
    },
    serializers: {
      // Fastify's request serializer, with secret-looking query values masked (clients do send ?token=).
      req: (request) => {
        const { method, url, host, ip, socket } = request as unknown as { method: string, url: string, host?: string, ip?: string, socket?: { remotePort?: number } }
        return { method, url: url?.replace(SECRET_QUERY_PARAM, '$1[redacted]'), host, remoteAddress: ip, remotePort: socket?.remotePort }
      }
    }
  }
}

/**
 * One line per request, written when it completes (Fastify's default is two: one as it arrives
 * and one as it completes, which halves the throughput a saturated server keeps for its work).
 * REQUEST_LOG=all: every request, at info (error for a 5xx or a stream error). REQUEST_LOG=errors:
 * only a response that failed or took at least SLOW_REQUEST_MS (warn).
 */
class RequestLogController extends LogController {
  constructor (private readonly everyRequest: boolean, private readonly slowMs: number) {
    super()
  }

  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const responseTime = reply.elapsedTime
    if (error || reply.statusCode >= 500) request.log.error({ req: request, res: reply, err: error ?? undefined, responseTime }, 'request failed')
    else if (responseTime >= this.slowMs) request.log.warn({ req: request, res: reply, responseTime }, 'slow request')
    else if (this.everyRequest) request.log.info({ req: request, res: reply, responseTime }, 'request completed')
  }
}

/** Seconds to ms; Node checks header and request deadlines on this interval (30 s by default). */
export function serverTimeoutOptions (config: Config) {
  const checkEvery = Math.min(30_000, Math.max(250, Math.floor(config.headersTimeout * 1000 / 4)))
  return {
    connectionTimeout: config.connectionTimeout * 1000,
    keepAliveTimeout: config.keepAliveTimeout * 1000,
    requestTimeout: config.requestTimeout * 1000,
    http: { headersTimeout: config.headersTimeout * 1000, requestTimeout: config.requestTimeout * 1000, connectionsCheckingInterval: checkEvery }
  }
}

/** The composition root: opens the database (migrating it), then registers plugins and routes. No listen. */
export async function buildApp (config: Config, overrides: AppOverrides = {}): Promise<FastifyInstance> {
  const hsts = strictTransportSecurity(config)
  const frameworkErrorHeaders = { 'x-content-type-options': 'nosniff', 'cache-control': 'no-store', ...(hsts && { 'strict-transport-security': hsts }) }
  const app = Fastify({
    logger: overrides.logger ?? loggerOptions(config),
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    // Our own body validation rejects these keys; secure-json-parse refuses them outright.
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    routerOptions: { maxParamLength: 100 },
    // A malformed percent-encoding or an over-long path segment is answered before routing, so
    // it gets neither the error handler nor the onSend hooks: the same {"detail"} and headers here.
    frameworkErrors: (error, _request, reply) => {
      const detail = error.code === 'FST_ERR_MAX_PARAM_LENGTH'
        ? 'A path segment is too long'
        : error.code === 'FST_ERR_BAD_URL' ? 'The URL is malformed (invalid percent-encoding)' : 'Bad request'
      return (reply as FastifyReply).code(400).headers(frameworkErrorHeaders).send({ detail })
    },
    return503OnClosing: true,
    // Not trusted blindly (requestIdHeader: false): requestIdFor keeps a sane X-Request-Id only.
    requestIdHeader: false,
    genReqId: requestIdFor,
    // Explicit limits instead of Fastify's "none": a slow client cannot hold a connection forever.
    ...serverTimeoutOptions(config),
    logController: new RequestLogController(config.requestLog === 'all', config.slowRequestMs)
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(createValidatorCompiler())
  // Only JSON bodies: text/plain (which Fastify accepts by default) gets a 415.
  app.removeContentTypeParser('text/plain')
  registerErrorHandler(app)

  const now = overrides.now ?? Date.now
  // Before the database opens: a bad MAIL_TEMPLATES_DIR stops the start with nothing to clean up.
  const templates = loadTemplates(config.mail.templatesDir)
  const db = overrides.db ?? createDb(config.database, { timeoutMs: config.dbTimeoutMs, poolSize: config.dbPoolSize })
  try {
    await migrateToLatest(db)
  } catch (error) {
    if (!overrides.db) await db.close()
    throw error
  }
  const { secret, source, path } = resolveJwtSecret(config)
  if (source === 'created') app.log.warn({ path }, 'JWT_SECRET not set: generated a 256-bit secret and saved it (owner-only) for later starts')
  const mfaKey = resolveMfaKey(config)
  if (mfaKey.source === 'created') app.log.warn({ path: mfaKey.path }, 'MFA_ENCRYPTION_KEY not set: generated the key for TOTP secrets and saved it (owner-only); keep it with your backups')
  const mfaKeyring = createKeyring(mfaKey.key, config.mfa.previousKeys)
  // Files we create are owner-only; older ones (or an operator's) may not be: say so, change nothing.
  const { database } = config
  const readable = readableDataFilesWarning([
    ...(database.dialect === 'sqlite' && database.location !== ':memory:' ? sqliteFiles(database.location) : []),
    ...(source === 'file' && path !== undefined ? [path] : []),
    ...(mfaKey.source === 'file' && mfaKey.path !== undefined ? [mfaKey.path] : [])
  ])
  if (readable !== undefined) app.log.warn({ files: readable.files }, readable.message)

  app.decorate('config', config)
  await app.register(dbPlugin, { db })
  await app.register(requestIdPlugin)
  // Not registered at all without CORS_ORIGINS: no hook on any request. Before the metrics plugin,
  // whose /metrics it exempts, and after request-id, so a preflight's answer carries the id too.
  if (config.corsOrigins.length > 0) await app.register(corsPlugin)
  const metrics = createMetrics()
  await app.register(metricsPlugin, { metrics })
  await app.register(authPlugin, {
    tokens: createTokens({ secret, issuer: config.jwtIssuer, audience: config.jwtAudience, ttl: config.accessTokenTtl, now }),
    passwords: overrides.passwords ?? await createPasswords(config.hashConcurrency, config.hashQueueLimit,
      (operation, seconds) => metrics.hashDuration.observe({ operation }, seconds)),
    now
  })
  await app.register(limitsPlugin)
  await app.register(emailPlugin, { key: linkKey(secret), templates })
  // After the email plugin, so that at close its work (which queues emails) ends first.
  await app.register(afterResponsePlugin)
  await app.register(securityHeaders)
  if (config.docs) await app.register(docsPlugin)
  if (config.adminConsole) await app.register(adminConsolePlugin)
  await app.register(healthPlugin)

  await app.register(authRoutes, { refreshKey: rotationKey(secret) })
  await app.register(sessionsRoutes)
  await app.register(usersRoutes)
  await app.register(accountRoutes)
  await app.register(accountPages)
  await app.register(dataExportRoutes)
  await app.register(adminRoutes)
  await app.register(auditRoutes)
  await app.register(mfaRoutes, { keyring: mfaKeyring })
  await app.register(mfaAdminRoutes)
  await app.register(passkeysRoutes)
  return app
}
