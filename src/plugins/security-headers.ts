import fp from 'fastify-plugin'

/**
 * nosniff on every response; no-store on API responses (they carry tokens or user data), unless
 * the route chose its own caching (the account pages' script and stylesheet).
 * Fastify sends no X-Powered-By or Server banner to begin with.
 */
export default fp(async (app) => {
  // Callback style, not async: this runs on every response and a promise per hook adds up.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-content-type-options', 'nosniff')
    if (!request.url.startsWith('/docs/static/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
    done(null, payload)
  })
}, { name: 'security-headers' })
