// Our GET on a SQLite database of --scale users (e.g. 1,000,000): the indexed read must not slow
// down with the table's size.
import { join } from 'node:path'
import { ratioTo, medianOf, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'
import { mintTokens, seedSqlite } from '../lib/seed.js'

export const scale: Scenario = {
  name: 'scale',
  description: 'GET /users/{id} on SQLite with --scale N users, against the --users figure',
  optIn: true,
  requires: { option: '--scale N', given: (settings) => settings.scale > 0 },
  async run (bench) {
    const users = bench.settings.scale
    const file = join(bench.dir, 'scale.db')
    const seconds = await seedSqlite(file, users, bench.hashed)
    bench.note(`seeded ${users} users and sessions into SQLite in ${seconds.toFixed(1)} s`)
    const server = await bench.startServer(`sqlite:///${file}`, { name: `SQLite, ${users} users` })
    const requests = authenticatedGets(mintTokens(bench.jwtSecret, users, Math.min(bench.settings.tokens, users)))
    const row = await bench.measure({
      label: `GET /users/{id}, SQLite, ${users} users`,
      target: server,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    ratioTo(bench, row, 'ceiling')
    const base = await bench.saturatedGetRate()
    const share = medianOf(row, 'rps') / base
    row.goals.push({ text: `within 15% of ${bench.settings.users} users (${base.toFixed(0)}/s)`, met: share >= 0.85, detail: `${(share * 100).toFixed(0)}%` })
    await server.stop()
  }
}
