import fp from 'fastify-plugin'
import type { Config } from '../config.js'

/**
 * The Strict-Transport-Security value when clients reach us over HTTPS (PUBLIC_URL https://),
 * else undefined: RFC 6797 has browsers ignore it over plain HTTP, and on a plain-HTTP service it
 * would only mislead. No includeSubDomains or preload: those bind every other host of the domain.
 */
export function strictTransportSecurity (config: Config): string | undefined {
  return config.publicUrl.startsWith('https://') ? `max-age=${config.hstsMaxAge}` : undefined
}

/**
 * nosniff on every response; no-store on API responses (they carry tokens or user data), unless
 * the route chose its own caching (the account pages' script and stylesheet);
 * Strict-Transport-Security when PUBLIC_URL is https://.
 * Fastify sends no X-Powered-By or Server banner to begin with.
 */
export default fp(async (app) => {
  const hsts = strictTransportSecurity(app.config)
  // Callback style, not async: this runs on every response and a promise per hook adds up.
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-content-type-options', 'nosniff')
    if (!request.url.startsWith('/docs/static/') && !reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
    if (hsts !== undefined) reply.header('strict-transport-security', hsts)
    done(null, payload)
  })
}, { name: 'security-headers' })
