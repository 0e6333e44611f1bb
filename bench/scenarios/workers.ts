// Our GET with WORKERS=auto: node:cluster, one process per core, on the same SQLite file.
import { ratioTo, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'

export const workers: Scenario = {
  name: 'workers',
  description: 'GET /users/{id} on SQLite with WORKERS=auto (one process per core)',
  async run (bench) {
    const server = await bench.startServer(bench.sqlite.url, { env: { WORKERS: 'auto' } })
    const requests = authenticatedGets(bench.tokens)
    const row = await bench.measure({
      label: `GET /users/{id}, SQLite, WORKERS=auto (${bench.settings.hashConcurrency})`,
      target: server,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    ratioTo(bench, row, 'ceiling')
    await server.stop()
  }
}
