import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifySchema, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'

// Version and licence come from package.json (src/plugins and dist/plugins are both two levels down).
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string, license: string }

type Hook = RouteOptions['onRequest']

/**
 * OpenAPI document at /openapi.json and Swagger UI at /docs, as the FastAPI app had.
 *
 * The document passes Redocly CLI's `recommended` ruleset (test/openapi.test.ts lints the served
 * document), and these defaults keep it so for routes added later: an operation that declares no
 * `security` gets the Bearer scheme when its route runs `app.authenticate` and an explicit
 * `security: []` (public) otherwise, so no operation is left without one.
 */
export default fp(async (app) => {
  const authenticate = app.authenticate
  const runsAuthenticate = (route: RouteOptions) =>
    [route.onRequest, route.preValidation, route.preHandler].flat().some((hook: Hook) => hook === authenticate)

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'User Management API',
        description: 'Sign up, log in with JWTs, and read, update and delete your account. ' +
          'Compatible with the FastAPI User Management API.',
        version: pkg.version,
        license: { name: pkg.license, identifier: pkg.license }
      },
      // PUBLIC_URL: where clients reach the service (behind a proxy, not the address it listens on).
      servers: [{ url: app.config.publicUrl }],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The access_token from POST /users/login' }
        }
      },
      tags: [{ name: 'users', description: 'Accounts' }, { name: 'auth', description: 'Logging in and tokens' }, { name: 'account', description: 'Password reset and email verification by emailed link; your data as a file' }, { name: 'mfa', description: 'Second factors: TOTP and recovery codes' }, { name: 'passkeys', description: 'Passkeys (WebAuthn): adding, listing and removing them; logging in with one is under auth' }, { name: 'admin', description: 'Administration: the user directory, invitations, suspension, roles, sessions, the audit log (administrators only)' }, { name: 'operations', description: 'Health checks for orchestrators and load balancers' }]
    },
    // Route paths are the service's own; PUBLIC_URL's path (a proxy prefix) must not be cut from them.
    stripBasePath: false,
    transform: ({ schema, url, route }) => {
      if (schema === undefined || (schema as FastifySchema & { security?: unknown }).security !== undefined) return { schema, url }
      return { schema: { ...schema, security: runsAuthenticate(route as RouteOptions) ? [{ bearerAuth: [] }] : [] } as FastifySchema, url }
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: false } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'docs', dependencies: ['auth'] })
