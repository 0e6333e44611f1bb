// Our authenticated GET /users/{id} on SQLite at saturation: every connection sends its next
// request as soon as the answer came, each request with another user's token (every user reads
// itself). The goals are issue 18's: a clean tail in every run, and close to the lean route.
import { everyRun, medianOf, ratioTo, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'

export const get: Scenario = {
  name: 'get',
  description: 'GET /users/{id} on SQLite at saturation (the authenticated read every client makes)',
  async run (bench) {
    const server = await bench.mainServer()
    const requests = authenticatedGets(bench.tokens)
    const row = await bench.measure({
      label: 'GET /users/{id}, SQLite',
      target: server,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    ratioTo(bench, row, 'ceiling')
    row.goals.push(everyRun(row, 'p99 <= 3x p50 and max < 100 ms in every run', (run) => run.p99! <= 3 * run.p50! && run.max! < 100))
    const lean = bench.row('lean')
    if (lean) {
      const share = medianOf(row, 'rps') / medianOf(lean, 'rps')
      row.goals.push({ text: '>= 85% of the lean route\'s req/s', met: share >= 0.85, detail: `${(share * 100).toFixed(0)}%` })
    } else {
      bench.note('GET: the goal ">= 85% of the lean route" was not checked (the lean scenario did not run)')
    }
    // Throughput ratios move with the load generator's share of the cores; CPU time per request
    // is the server's own cost, so this comparison holds across hosts and runs.
    const cpu = medianOf(row, 'cpuUs')
    const leans = [lean, bench.row('lean-fastify')].filter((one) => one !== undefined && medianOf(one, 'cpuUs') > 0)
    if (cpu && leans.length > 0) {
      bench.note(`server CPU per GET: ${cpu.toFixed(0)} us, ${leans.map((one) => `${(cpu / medianOf(one!, 'cpuUs')).toFixed(2)}x the ${one!.scenario === 'lean' ? 'lean route' : 'lean route on Fastify'} (${medianOf(one!, 'cpuUs').toFixed(0)} us)`).join(', ')} (medians)`)
    }
  }
}
