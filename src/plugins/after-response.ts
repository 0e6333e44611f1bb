import { finished } from 'node:stream'
import type { FastifyReply } from 'fastify'
import fp from 'fastify-plugin'

declare module 'fastify' {
  interface FastifyInstance {
    afterResponse: AfterResponse
  }
}

/**
 * Work a route starts only once its response has gone out, so the response's timing cannot
 * depend on it: a request for a password-reset link answers in the same time whether or not the
 * account exists (OWASP's Forgot Password Cheat Sheet suggests exactly this). Nothing else runs
 * per request: the route arms it on its own reply. Failures are logged; shutdown waits for the
 * work still running, so a SIGTERM loses none of it.
 */
export interface AfterResponse {
  run: (reply: FastifyReply, work: () => Promise<void>) => void
  /** Resolves when no such work is running (tests, shutdown). */
  idle: () => Promise<void>
}

export default fp(async (app) => {
  const running = new Set<Promise<void>>()
  app.decorate('afterResponse', {
    run: (reply, work) => {
      finished(reply.raw, () => {
        const task = work().catch((error: unknown) => {
          reply.log.error({ err: error }, 'work after the response failed')
        }).finally(() => running.delete(task))
        running.add(task)
      })
    },
    idle: async () => {
      while (running.size > 0) await Promise.all(running)
    }
  } satisfies AfterResponse)
  app.addHook('onClose', async () => {
    await app.afterResponse.idle()
  })
}, { name: 'after-response' })
