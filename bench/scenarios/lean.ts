// The lean route (bench/servers/lean.ts): the same authenticated read as our GET /users/{id},
// fast-jwt and one prepared better-sqlite3 statement on bare node:http, with nothing else. The
// distance from it to our route is what our framework, logging, metrics and hooks cost.
import { join } from 'node:path'
import { ratioTo, type Bench, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'
import { freePort, ROOT } from '../lib/servers.js'

/** Measures bench/servers/lean.ts on bare node:http, or (fastify) on a bare Fastify. */
export async function measureLean (bench: Bench, fastify: boolean): Promise<void> {
  const port = await freePort()
  const profile = bench.settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench/results')}`] : []
  const server = await bench.startProcess({
    command: bench.settings.node.path,
    args: [...profile, '--import', 'tsx', join(ROOT, 'bench/servers/lean.ts')],
    cwd: ROOT,
    env: { PATH: process.env.PATH, PORT: String(port), DATABASE_FILE: bench.sqlite.file, JWT_SECRET: bench.jwtSecret, LEAN_FASTIFY: fastify ? '1' : '' },
    port,
    // Its only route is /users/:id: the root answers 401 or 404 once it listens.
    anyStatus: true
  })
  const requests = authenticatedGets(bench.tokens)
  const row = await bench.measure({
    label: `lean route: ${fastify ? 'bare Fastify' : 'node:http'} + fast-jwt + prepared SQLite`,
    kind: 'reference',
    target: server,
    load: (duration) => bench.wrk(server.url, { requests, duration })
  })
  ratioTo(bench, row, 'ceiling')
  await server.stop()
}

export const lean: Scenario = {
  name: 'lean',
  description: 'the lean route: node:http + fast-jwt + one prepared SQLite statement (bench/servers/lean.ts)',
  run: (bench) => measureLean(bench, false)
}
