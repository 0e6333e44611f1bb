// Our GET at a fixed rate of half the saturated rate: what a client sees from a busy but not
// saturated instance. wrk paces the requests on an even schedule (see bench/lib/wrk.ts).
import { everyRun, type Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'

export const rate: Scenario = {
  name: 'rate',
  description: 'GET /users/{id} on SQLite at a fixed rate of half the saturated GET rate',
  async run (bench) {
    const server = await bench.mainServer()
    const fixedRate = Math.max(100, Math.round((await bench.saturatedGetRate()) / 2))
    const requests = authenticatedGets(bench.tokens)
    const row = await bench.measure({
      label: `GET at ${fixedRate}/s (half the saturated rate)`,
      target: server,
      fixedRate,
      load: (duration) => bench.wrk(server.url, { requests, duration, rate: fixedRate })
    })
    // A request sent late (every connection busy) waited unmeasured: the schedule must hold.
    row.goals.push(everyRun(row, 'p99 <= 10 ms, < 1% sent late, in every run',
      (run) => run.p99! <= 10 && run.extra!['sent late %'] < 1))
  }
}
