// Our GET for --soak seconds: memory must stay flat (RSS in the last minute against the first).
import type { Scenario } from '../lib/bench.js'
import { authenticatedGets } from '../lib/loads.js'

export const soak: Scenario = {
  name: 'soak',
  description: 'GET /users/{id} for --soak S seconds; RSS in the first and last minute',
  optIn: true,
  requires: { option: '--soak S', given: (settings) => settings.soak > 0 },
  async run (bench) {
    const server = await bench.mainServer()
    const seconds = bench.settings.soak
    const requests = authenticatedGets(bench.tokens)
    const start = Date.now()
    const row = await bench.measure({
      label: `GET soak ${seconds} s`,
      target: server,
      duration: seconds,
      warmup: 0,
      runs: 1,
      load: (duration) => bench.wrk(server.url, { requests, duration })
    })
    const average = (from: number, to: number) => {
      const window = server.rss.samples.filter((sample) => sample.at >= from && sample.at < to).map((sample) => sample.mb)
      return window.reduce((sum, mb) => sum + mb, 0) / Math.max(1, window.length)
    }
    const end = start + seconds * 1000
    const first = average(start, start + 60_000)
    const last = average(end - 60_000, end)
    row.runs[0].extra = { 'RSS first minute MB': first, 'RSS last minute MB': last }
    row.goals.push({ text: 'RSS flat (last minute within 10% of the first)', met: Math.abs(last - first) / first <= 0.1, detail: `${first.toFixed(1)} -> ${last.toFixed(1)} MB (${(((last - first) / first) * 100).toFixed(1)}%)` })
  }
}
