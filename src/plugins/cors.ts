import cors from '@fastify/cors'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** false: @fastify/cors adds nothing to this route's responses. */
    cors?: false
  }
}

/** Routes no browser page should call: Prometheus scrapes /metrics directly. */
const NO_CORS_URLS = new Set(['/metrics'])

// Every method a route may use, not only today's: listing one grants nothing (the route still
// decides), while a missing one would fail in the browser the day a route starts using it.
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']

/**
 * CORS for the browser origins listed in CORS_ORIGINS, by @fastify/cors. The composition root
 * registers it only when that list is not empty, so by default no request pays for it.
 *
 * - Only an origin on the list is ever answered, with itself (Vary: Origin); any other origin,
 *   and a request without one, gets no CORS header at all and its preflight a 404.
 * - No Access-Control-Allow-Credentials: clients send the access token in the Authorization
 *   header, never a cookie, so nothing needs the browser's credentials mode (and `*` is never sent).
 * - Preflights are answered in the onRequest hook, before authentication, for every route but
 *   /metrics; the answer allows the Authorization, Content-Type and X-Request-Id request headers
 *   and is cached for CORS_MAX_AGE. Scripts may read Retry-After (429, 503) and X-Request-Id.
 *
 * Register it before the plugins that add the routes in NO_CORS_URLS (its onRoute hook marks them).
 */
export default fp(async (app) => {
  const allowed = new Set(app.config.corsOrigins)

  app.addHook('onRoute', (route) => {
    if (NO_CORS_URLS.has(route.url)) route.config = { ...route.config, cors: false }
  })

  await app.register(cors, {
    // A function, not the list: for an origin not on the list @fastify/cors then adds no header
    // at all and leaves its preflight unanswered, where with a list it still sends the preflight's
    // Allow-Methods/Headers and Expose-Headers (only without Allow-Origin).
    origin: (origin, callback) => {
      callback(null, origin !== undefined && allowed.has(origin))
    },
    methods: METHODS,
    allowedHeaders: ['Authorization', 'Content-Type', 'X-Request-Id'],
    exposedHeaders: ['Retry-After', 'X-Request-Id'],
    credentials: false,
    maxAge: app.config.corsMaxAge,
    // An OPTIONS request from a listed origin without Access-Control-Request-Method gets the
    // preflight answer too, instead of the plugin's text/plain 400 (our errors are all JSON).
    strictPreflight: false
  })

  // The plugin's catch-all OPTIONS route would answer a preflight for /metrics: these do not.
  for (const url of NO_CORS_URLS) {
    app.options(url, { config: { cors: false }, schema: { hide: true } }, (_request, reply) => {
      reply.callNotFound()
    })
  }
}, { name: 'cors' })
