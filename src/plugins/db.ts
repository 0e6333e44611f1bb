import fp from 'fastify-plugin'
import type { Db } from '../db/database.js'

declare module 'fastify' {
  interface FastifyInstance {
    db: Db
  }
}

/** Decorates app.db; the database is opened by the composition root and closed with the app. */
export default fp<{ db: Db }>(async (app, { db }) => {
  app.decorate('db', db)
  app.addHook('onClose', async () => {
    await db.close()
  })
}, { name: 'db' })
