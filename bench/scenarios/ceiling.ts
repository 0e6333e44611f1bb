// The machine's ceiling for this request: bare node:http answering every request with the same
// JSON our GET returns, loaded with the same requests. Every req/s ratio "of ceiling" is to this.
import { join } from 'node:path'
import type { Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'
import { freePort, ROOT } from '../lib/servers.js'

export const ceiling: Scenario = {
  name: 'ceiling',
  description: 'bare node:http answering the same JSON as GET /users/{id}: the ceiling of this machine and load generator',
  async run (bench) {
    const main = await bench.mainServer()
    const { id, token } = bench.tokens[0]
    const body = await (await fetch(`${main.url}/users/${id}`, { headers: { authorization: `Bearer ${token}` } })).text()
    const port = await freePort()
    const server = await bench.startProcess({
      command: bench.settings.node.path,
      args: [join(ROOT, 'bench/servers/ceiling.mjs')],
      env: { PORT: String(port), BODY: body },
      port
    })
    const requests = authenticatedGets(bench.tokens)
    await bench.measure({
      label: 'ceiling: bare node:http, same JSON',
      kind: 'reference',
      target: server,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    await server.stop()
  }
}
