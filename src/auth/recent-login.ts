import type { FastifyInstance } from 'fastify'
import { errors } from '../errors.js'

/**
 * Sensitive changes need a recent login (within REAUTH_WINDOW): a stolen access or refresh
 * token alone must not be enough to take the account over (refreshing does not renew it).
 */
export function assertRecentLogin (app: FastifyInstance, user: { authenticated_at: string }, detail: string): void {
  if (app.now() - Date.parse(user.authenticated_at) > app.config.reauthWindow * 1000) throw errors.forbidden(detail)
}
