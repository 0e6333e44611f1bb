// Our GET at a fixed rate (a quarter of the saturated rate), first alone, then while another wrk
// floods the login with 32 connections: how much the password hashing, which runs on other
// threads, delays the requests that do not hash.
import { medianOf, type Run, type Scenario } from '../lib/bench.js'
import { authenticatedGets, logins } from '../lib/loads.js'
import { waitUntilIdle } from '../lib/proc.js'
import { sleep } from '../lib/servers.js'

export const flood: Scenario = {
  name: 'flood',
  description: 'GET /users/{id} at a quarter of the saturated rate, idle and during a login flood',
  async run (bench) {
    const server = await bench.mainServer()
    const { duration, runs } = bench.settings
    const fixedRate = Math.max(100, Math.round((await bench.saturatedGetRate()) / 4))
    const gets = authenticatedGets(bench.tokens)
    const paced = () => bench.wrk(server.url, { requests: gets, rate: fixedRate })
    const floodLogins = logins(bench.settings.users, bench.password)
    const idle: Run[] = []
    const during: Run[] = []
    for (let i = 1; i <= runs; i++) {
      // The logins the last flood left in flight must not run into the idle measurement.
      await waitUntilIdle(server.pid)
      idle.push(await bench.measureRun(server, paced, { fixedRate }))
      // The flood starts 2 s before and ends 2 s after the measured GET load.
      const flooding = bench.wrk(server.url, { requests: floodLogins, connections: 32, duration: duration + 4 })
      flooding.catch(() => {}) // awaited below; this only keeps a failure meanwhile from being unhandled
      await sleep(2000)
      const run = await bench.measureRun(server, paced, { fixedRate })
      const logins = await flooding
      run.extra = { ...run.extra, 'logins/s (flood)': logins.rps }
      run.errors! += logins.errors
      run.non2xx! += logins.non2xx
      during.push(run)
      bench.log(`GET at ${fixedRate}/s (run ${i} of ${runs}): p99 ${idle.at(-1)!.p99!.toFixed(1)} ms idle, ${run.p99!.toFixed(1)} ms during ${logins.rps.toFixed(0)} logins/s`)
    }
    const idleRow = bench.addRow({ label: `GET at ${fixedRate}/s, idle`, runs: idle, fixedRate })
    const floodRow = bench.addRow({ label: `GET at ${fixedRate}/s, login flood`, runs: during, fixedRate })
    const limit = Math.max(2 * medianOf(idleRow, 'p99'), 1)
    floodRow.goals.push({ text: 'p99 <= 2x idle (medians of the runs)', met: medianOf(floodRow, 'p99') <= limit, detail: `${medianOf(floodRow, 'p99').toFixed(1)} ms, limit ${limit.toFixed(1)} ms` })
  }
}
