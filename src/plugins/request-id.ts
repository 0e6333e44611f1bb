import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import fp from 'fastify-plugin'

// A caller's (or proxy's) X-Request-Id is kept when it is a plain token, so one id follows a
// request through every service; anything else (too long, spaces, control characters that could
// forge log lines) is replaced by a fresh UUID.
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Fastify's genReqId: the incoming X-Request-Id if sane, else a new UUID. */
export function requestIdFor (request: IncomingMessage): string {
  const incoming = request.headers['x-request-id']
  return typeof incoming === 'string' && SANE_REQUEST_ID.test(incoming) ? incoming : randomUUID()
}

/** Every response names its request id (it is on every log line and audit event of the request). */
export default fp(async (app) => {
  // Callback style, not async: this runs on every request and a promise per hook adds up.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id)
    done()
  })
}, { name: 'request-id' })
