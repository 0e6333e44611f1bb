import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

/** OpenAPI document at /openapi.json and Swagger UI at /docs, as the FastAPI app had. */
export default fp(async (app) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'User Management API',
        description: 'Sign up, log in with JWTs, and read, update and delete your account. ' +
          'Compatible with the FastAPI User Management API.',
        version: '0.1.0'
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'The access_token from POST /users/login' }
        }
      },
      tags: [{ name: 'users', description: 'Accounts' }, { name: 'auth', description: 'Logging in and tokens' }, { name: 'account', description: 'Password reset and email verification by emailed link; your data as a file' }, { name: 'admin', description: 'Administration: the user directory, invitations, suspension, roles, sessions, the audit log (administrators only)' }, { name: 'operations', description: 'Health checks for orchestrators and load balancers' }]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs', uiConfig: { persistAuthorization: false } })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'docs' })
