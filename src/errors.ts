import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { classifyDbError } from './db/database.js'

/**
 * A domain error: its message is safe to show the client, as `{"detail": message}`, with `extra`
 * fields beside it when a client needs more than the sentence (e.g. a suspension's `until`).
 */
export class AppError extends Error {
  constructor (
    readonly statusCode: number,
    message: string,
    readonly headers: Record<string, string> = {},
    readonly extra: Record<string, string> = {}
  ) {
    super(message)
    this.name = 'AppError'
  }
}

// The catalogue: every 4xx the API sends on purpose is built here, so wording stays consistent.
export const errors = {
  badRequest: (detail: string) => new AppError(400, detail),
  /** One message for unknown email and wrong password: never say which. */
  invalidCredentials: () => new AppError(401, 'Incorrect email or password', { 'www-authenticate': 'Bearer' }),
  notAuthenticated: () => new AppError(401, 'Not authenticated', { 'www-authenticate': 'Bearer' }),
  invalidToken: () => new AppError(401, 'Could not validate credentials', { 'www-authenticate': 'Bearer error="invalid_token"' }),
  forbidden: (detail = 'Not enough permissions') => new AppError(403, detail),
  /** Right password, but an administrator suspended the account (until a time, or until lifted). */
  accountSuspended: (until: string | null) => new AppError(403, 'Account suspended', {}, until === null ? {} : { until }),
  /** The request is valid but would break a rule of the accounts' state (guard rails). */
  conflict: (detail: string) => new AppError(409, detail),
  userNotFound: () => new AppError(404, 'User not found'),
  serviceUnavailable: (detail = 'Service temporarily unavailable, try again shortly', retryAfterSeconds = 2) =>
    new AppError(503, detail, { 'retry-after': String(retryAfterSeconds) })
}

type ValidationIssue = NonNullable<FastifyError['validation']>[number]

/** "email: must match format \"email\"" rather than Ajv's "body/email must match ...". */
function describeValidation (issues: ValidationIssue[], context: string | undefined): string {
  return issues.map((issue) => {
    const params = issue.params as Record<string, unknown>
    let field = issue.instancePath.replace(/^\//, '').replaceAll('/', '.')
    if (issue.keyword === 'required') field = [field, String(params.missingProperty)].filter(Boolean).join('.')
    if (issue.keyword === 'additionalProperties') field = [field, String(params.additionalProperty)].filter(Boolean).join('.')
    let message = issue.message ?? 'is invalid'
    if (issue.keyword === 'format' && params.format === 'email') message = 'must be a valid email address'
    if (issue.keyword === 'type' && field === '') return `${context === 'body' ? 'request body' : context} must be a JSON ${String(params.type)}`
    if (issue.keyword === 'required') message = 'is required'
    return `${field || context || 'input'}: ${message}`
  }).join('; ')
}

/** Fastify's own client errors, mapped to the status and a message a client can act on. */
function frameworkError (error: FastifyError): AppError | undefined {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError(413, 'Request body is too large')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError(415, 'Unsupported media type: send the body as application/json')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new AppError(400, 'Request body is empty: send a JSON object')
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      // Also what secure-json-parse's refusal of __proto__ / constructor.prototype keys becomes.
      return new AppError(400, 'Request body is not valid JSON (or uses a forbidden __proto__/constructor key)')
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError(400, 'Content-Length does not match the body')
  }
  if (typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
    return new AppError(error.statusCode, error.message)
  }
  return undefined
}

/** The one error handler: 4xx pass their message through; 5xx are logged and answered generically. */
export function registerErrorHandler (app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (error.validation) {
      return reply.code(400).send({ detail: describeValidation(error.validation, error.validationContext) })
    }
    // PostgreSQL refuses a NUL character in text (SQLSTATE 22021) that SQLite would store: the
    // client sent it (a login email, a path segment), so it is their error, not a 500.
    if ((error as { code?: unknown }).code === '22021') {
      return reply.code(400).send({ detail: 'Text must not contain the NUL (\\u0000) character' })
    }
    // Database outages and lock timeouts, whichever query met them, become one 503 here.
    const dbError = classifyDbError(error)
    if (dbError !== undefined) request.server.metrics?.dbErrors.inc({ kind: dbError })
    const known = error instanceof AppError
      ? error
      : dbError === 'unavailable' ? errors.serviceUnavailable('Database unavailable, try again shortly') : frameworkError(error)
    if (known) {
      if (known.statusCode >= 500) request.log.warn({ err: error }, known.message)
      const extra = known instanceof AppError ? known.extra : {}
      return reply.code(known.statusCode).headers(known.headers).send({ detail: known.message, ...extra })
    }
    request.log.error({ err: error }, 'unhandled error')
    return reply.code(500).send({ detail: 'Internal Server Error' })
  })

  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ detail: 'Not Found' }))
}
