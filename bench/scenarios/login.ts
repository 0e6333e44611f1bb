// POST /users/login: bound by argon2id, so measured against the raw verify rate of this machine.
// The raw rate of a shared machine drifts by tens of percent within a minute, so each run is
// bracketed: raw rate just before and just after it (once the server is idle again), and the
// run's ratio is to their mean.
import { median, type Bench, type Row, type Scenario } from '../lib/bench.js'
import { rawArgon2 } from '../lib/argon2.js'
import { logins } from '../lib/loads.js'
import { waitUntilIdle } from '../lib/proc.js'
import type { WrkLoad } from '../lib/wrk.js'

/** Runs `load` --runs times on our main server, each run between two raw argon2id measurements. */
export async function measureAgainstRawArgon2 (bench: Bench, operation: 'verify' | 'hash', label: string, load: () => Pick<WrkLoad, 'requests' | 'lua'>): Promise<Row> {
  const server = await bench.mainServer()
  const { settings } = bench
  const raw = () => rawArgon2(operation, { seconds: Math.min(5, settings.duration), concurrency: settings.hashConcurrency, password: bench.password, hashed: bench.hashed })
  const raws = [await raw()]
  const row = bench.addRow({ label, runs: [] })
  const ratios: number[] = []
  for (let i = 1; i <= settings.runs; i++) {
    const run = await bench.measureRun(server, () => bench.wrk(server.url, load()))
    // The hashes wrk left in flight when it stopped would slow the raw measurement down.
    if (!await waitUntilIdle(server.pid)) bench.note(`${label}: the server was still busy 30 s after run ${i}`)
    raws.push(await raw())
    const reference = (raws[i - 1] + raws[i]) / 2
    run.extra = { [`raw ${operation}/s`]: reference }
    ratios.push(run.rps! / reference)
    row.runs.push(run)
    bench.log(`${label} (run ${i} of ${settings.runs}): ${run.rps!.toFixed(0)} req/s, p99 ${run.p99!.toFixed(0)} ms, raw argon2id ${operation} ${raws[i - 1].toFixed(0)}/s before, ${raws[i].toFixed(0)}/s after`)
  }
  row.ratio = { to: `raw ${operation}`, value: median(ratios) }
  row.goals.push({ text: `>= 80% of raw argon2id ${operation} (median of the runs)`, met: row.ratio.value >= 0.8, detail: ratios.map((ratio) => `${(ratio * 100).toFixed(0)}%`).join(', ') })
  bench.note(`raw argon2id ${operation}: in-process, ${settings.hashConcurrency} at a time (the server's HASH_CONCURRENCY), ${Math.min(5, settings.duration)} s before and after each run of ${label}`)
  return row
}

export const login: Scenario = {
  name: 'login',
  description: 'POST /users/login (one argon2id verify each) against the raw verify rate, bracketed',
  async run (bench) {
    const requests = logins(bench.settings.users, bench.password)
    await measureAgainstRawArgon2(bench, 'verify', 'POST /users/login', () => ({ requests }))
  }
}
