// Our GET on PostgreSQL (BENCH_DATABASE_URL: a server on which a fresh database is created and
// dropped). The database server's own CPU is not counted in CPU us/req.
import { ratioTo, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'
import { createPostgresDatabase, seedPostgres } from '../lib/seed.js'

export const pg: Scenario = {
  name: 'pg',
  description: 'GET /users/{id} on PostgreSQL (a fresh database on that server, dropped at the end)',
  requires: { option: 'BENCH_DATABASE_URL', given: (settings) => settings.postgresUrl !== undefined },
  async run (bench) {
    const database = await createPostgresDatabase(bench.settings.postgresUrl!, `uma_bench_${bench.runId}`)
    bench.onCleanup(database.drop)
    const seconds = await seedPostgres(database.url, bench.settings.users, bench.hashed)
    bench.note(`seeded ${bench.settings.users} users and sessions into PostgreSQL in ${seconds.toFixed(1)} s`)
    const server = await bench.startServer(database.url, { name: 'PostgreSQL' })
    const requests = authenticatedGets(bench.tokens)
    const row = await bench.measure({
      label: 'GET /users/{id}, PostgreSQL',
      target: server,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    if (ratioTo(bench, row, 'ceiling')) {
      row.goals.push({ text: '>= 20% of ceiling', met: row.ratio!.value >= 0.2, detail: `${(row.ratio!.value * 100).toFixed(0)}%` })
    }
    await server.stop()
  }
}
