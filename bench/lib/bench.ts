// What a scenario works with: the settings of the run, the seeded database, servers, the load
// generator, and the rows it reports. A scenario (bench/scenarios/*.ts) is a `Scenario`; the
// runner (bench/run.ts) gives each one a `Bench` and prints, charts and checks what they recorded.
import { join } from 'node:path'
import { authenticatedGets } from './loads.js'
import { cpuSeconds, waitUntilIdle } from './proc.js'
import type { UserToken } from './seed.js'
import { ROOT, startApiServer, startProcess, type Target } from './servers.js'
import { runWrk, type WrkLoad, type WrkResult } from './wrk.js'

/** The settings of one `npm run bench` (its options; see bench/run.ts). */
export interface Settings {
  /** Seconds per measured run. */
  duration: number
  connections: number
  /** wrk threads. */
  threads: number
  /** Measured runs per scenario (the table shows each figure's min-max over them). */
  runs: number
  /** Seconds of unrecorded load before a scenario's runs. */
  warmup: number
  users: number
  tokens: number
  /** --scale N: also GET with N users (0: off). */
  scale: number
  /** --soak S: also GET for S seconds, RSS first vs. last minute (0: off). */
  soak: number
  requestLog: string
  profile: boolean
  fastapi: boolean
  /** BENCH_DATABASE_URL: a PostgreSQL server on which the pg scenario creates its own database. */
  postgresUrl?: string
  /** The server's HASH_CONCURRENCY (its default: the cores), for the raw argon2id references. */
  hashConcurrency: number
  /** The shell command that starts our server (package.json's start script, or BENCH_START). */
  startScript: string
  /**
   * The node that runs the servers (ours, the lean routes, the ceiling). Today the bench's own;
   * issue 16's `--node MAJOR` is meant to set it (and the header and JSON already show it).
   */
  node: { version: string, path: string }
}

/** One measured run of a scenario. Every figure is optional: a scenario reports what it measured. */
export interface Run {
  rps?: number
  /** Latency percentiles and maximum, ms. */
  p50?: number
  p99?: number
  max?: number
  /** Connect/read/write errors and timeouts. */
  errors?: number
  /** Responses with a status >= 400. */
  non2xx?: number
  /** Server CPU time (user + system, all its threads and child processes) per request, microseconds. */
  cpuUs?: number
  /** Peak server RSS during the run, MB. */
  rssMb?: number
  /**
   * The scenario's own figures, named with their unit ('first page p95 ms': 4.2): shown under its
   * row with their min-max over the runs, and in the JSON.
   */
  extra?: Record<string, number>
}

export interface Goal {
  text: string
  met: boolean
  /** What was measured against it ('2 of 3 runs', '64%'). */
  detail?: string
}

export interface Row {
  /** The scenario that recorded it (its --only name). */
  scenario: string
  label: string
  /** For the charts' colours: our server, a comparison point (ceiling, lean routes), or the FastAPI app. */
  kind: 'ours' | 'reference' | 'fastapi'
  /** A load at a fixed rate (req/s): its req/s is not a capacity, so the req/s chart leaves it out. */
  fixedRate?: number
  runs: Run[]
  ratio?: { to: string, value: number }
  /** Checked by --check. */
  goals: Goal[]
}

export interface Scenario {
  /** Its name for --only, and its file's name. */
  name: string
  /** One line for --help. */
  description: string
  /** Runs only when its option asks for it (--scale, --soak, --fastapi); then also under --only. */
  optIn?: boolean
  /** An option it cannot run without: what to give (for --help and the note) and whether it was given. */
  requires?: { option: string, given: (settings: Settings) => boolean }
  run: (bench: Bench) => Promise<void>
}

export interface MeasureOptions {
  label: string
  target: Target
  /** One run of the load, for `duration` seconds (also used for the warm-up). */
  load: (duration: number) => Promise<WrkResult>
  /** Seconds per run (default: --duration). */
  duration?: number
  /** Seconds of warm-up, not recorded (default: --warmup). */
  warmup?: number
  /** Default: --runs. */
  runs?: number
  fixedRate?: number
  kind?: Row['kind']
}

/** A wrk load with the run's defaults: --duration, --connections, --threads. */
export type LoadOptions = Partial<Omit<WrkLoad, 'requests' | 'lua'>> & Pick<WrkLoad, 'requests' | 'lua'>

export interface Bench {
  settings: Settings
  /** A temporary folder for databases, logs and scripts, removed at the end. */
  dir: string
  /** The seeded users' password, and its argon2id hash with the server's parameters. */
  password: string
  hashed: string
  jwtSecret: string
  /** Random per run: names that must not clash with an earlier run's (databases, usernames). */
  runId: string
  /** The SQLite database with --users users, each with a live session. */
  sqlite: { file: string, url: string }
  /** Access tokens of --tokens of those users, spread evenly. */
  tokens: UserToken[]
  /** Our server on `sqlite`, started at first use and shared by the scenarios that use it. */
  mainServer: () => Promise<Target>
  /** Another instance of our server (stopped at the end, or earlier by `stop()`). */
  startServer: (databaseUrl: string, options?: { env?: Record<string, string>, name?: string }) => Promise<Target>
  /** Any other server process (stopped at the end, or earlier by `stop()`). */
  startProcess: typeof startProcess
  wrk: (url: string, load: LoadOptions) => Promise<WrkResult>
  /** Runs a load once, with the target's CPU per request and RSS peak. */
  measureRun: (target: Target, load: () => Promise<WrkResult>, options?: { fixedRate?: number }) => Promise<Run>
  /** Warm-up, then the runs, each on an idle server; records and returns the row. */
  measure: (options: MeasureOptions) => Promise<Row>
  /** Records a row measured another way. */
  addRow: (row: Omit<Row, 'scenario' | 'kind' | 'goals'> & Partial<Pick<Row, 'kind' | 'goals'>>) => Row
  /** The first row a scenario recorded in this bench run. */
  row: (scenario: string) => Row | undefined
  /** The median req/s of GET on `mainServer` at saturation (the get scenario's, or measured now). */
  saturatedGetRate: () => Promise<number>
  /** A line under the table. */
  note: (text: string) => void
  /** Progress on stderr. */
  log: (text: string) => void
  onCleanup: (cleanup: () => Promise<void> | void) => void
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/** The values of one figure over a row's runs. */
export function values (row: Row, figure: Exclude<keyof Run, 'extra'>): number[] {
  return row.runs.map((run) => run[figure]).filter((value): value is number => value !== undefined)
}

/** The median of one figure over a row's runs (0 when none has it). */
export function medianOf (row: Row, figure: Exclude<keyof Run, 'extra'>): number {
  const all = values(row, figure)
  return all.length > 0 ? median(all) : 0
}

/** A goal that every run of the row must meet. */
export function everyRun (row: Row, text: string, test: (run: Run) => boolean): Goal {
  const met = row.runs.filter(test).length
  return { text, met: met === row.runs.length, detail: `${met} of ${row.runs.length} runs` }
}

/** Sets the row's ratio to the median req/s of another scenario's row, if that was measured. */
export function ratioTo (bench: Bench, row: Row, scenario: string, name = scenario): Row['ratio'] {
  const other = bench.row(scenario)
  if (!other || !medianOf(other, 'rps')) return undefined
  row.ratio = { to: name, value: medianOf(row, 'rps') / medianOf(other, 'rps') }
  return row.ratio
}

export function formatRun (run: Run): string {
  const parts = [
    run.rps !== undefined && `${run.rps.toFixed(0)} req/s`,
    run.p50 !== undefined && `p50 ${run.p50.toFixed(1)} ms`,
    run.p99 !== undefined && `p99 ${run.p99.toFixed(1)} ms`,
    run.max !== undefined && `max ${run.max.toFixed(1)} ms`,
    (run.errors || run.non2xx) && `FAILED ${run.errors ?? 0} errors, ${run.non2xx ?? 0} non-2xx`,
    run.cpuUs !== undefined && `server CPU ${run.cpuUs.toFixed(0)} us/request`,
    run.rssMb !== undefined && `RSS peak ${run.rssMb.toFixed(0)} MB`,
    ...Object.entries(run.extra ?? {}).map(([name, value]) => `${name} ${Number(value.toFixed(2))}`)
  ]
  return parts.filter(Boolean).join(', ')
}

/** Everything the runner keeps about a bench run, and the `Bench` each scenario gets. */
export function createBench (base: {
  settings: Settings
  wrkPath: string
  dir: string
  password: string
  hashed: string
  jwtSecret: string
  runId: string
  sqlite: { file: string, url: string }
  tokens: UserToken[]
}) {
  const rows: Row[] = []
  const notes: string[] = []
  const cleanups: Array<() => Promise<void> | void> = []
  /** Our single-process servers, for the RSS goal (WORKERS=auto is several processes by design). */
  const apiServers: Array<{ name: string, target: Target }> = []
  const log = (line: string) => { process.stderr.write(`bench: ${line}\n`) }
  const { settings } = base

  const startServer = async (databaseUrl: string, options: { env?: Record<string, string>, name?: string } = {}) => {
    const target = await startApiServer({
      startScript: settings.startScript,
      nodePath: settings.node.path,
      jwtSecret: base.jwtSecret,
      requestLog: settings.requestLog,
      profileDir: settings.profile ? join(ROOT, 'bench/results') : undefined
    }, { databaseUrl, dir: base.dir, env: options.env })
    cleanups.push(target.stop)
    if ((options.env?.WORKERS ?? '1') === '1') apiServers.push({ name: options.name ?? databaseUrl, target })
    return target
  }

  let main: Promise<Target> | undefined
  const mainServer = () => {
    main ??= startServer(base.sqlite.url, { name: `SQLite, ${settings.users} users` }).then((target) => {
      notes.push(`server RSS after start and seeding: ${target.rss.current().toFixed(0)} MB`)
      return target
    })
    return main
  }

  const wrk = (url: string, load: LoadOptions) => runWrk(base.wrkPath, url, {
    duration: settings.duration, connections: settings.connections, threads: settings.threads, ...load
  }, base.dir)

  const measureRun = async (target: Target, load: () => Promise<WrkResult>, options: { fixedRate?: number } = {}): Promise<Run> => {
    const start = Date.now()
    const cpuBefore = cpuSeconds(target.pid)
    const result = await load()
    const cpu = cpuSeconds(target.pid) - cpuBefore
    // Latencies of no request would read as 0 ms.
    if (result.requests === 0) throw new Error(`no request completed within the run's ${result.seconds.toFixed(0)} s (a longer --duration is needed)`)
    return {
      rps: result.rps,
      p50: result.p50,
      p99: result.p99,
      max: result.max,
      errors: result.errors,
      non2xx: result.non2xx,
      cpuUs: (cpu * 1e6) / Math.max(1, result.requests),
      rssMb: target.rss.peakSince(start),
      ...(options.fixedRate ? { extra: { 'sent late %': (100 * result.late) / Math.max(1, result.requests) } } : {})
    }
  }

  const forScenario = (scenario: string): Bench => {
    const addRow: Bench['addRow'] = (row) => {
      const full: Row = { ...row, scenario, kind: row.kind ?? 'ours', goals: row.goals ?? [] }
      rows.push(full)
      return full
    }
    const measure = async (options: MeasureOptions): Promise<Row> => {
      const duration = options.duration ?? settings.duration
      const warmup = options.warmup ?? settings.warmup
      if (warmup > 0) await options.load(warmup)
      const runs: Run[] = []
      const count = options.runs ?? settings.runs
      for (let i = 1; i <= count; i++) {
        // Each run starts on an idle server: requests wrk abandoned when the last load stopped
        // (a hundred logins queued for hashing, say) would run into this one.
        await waitUntilIdle(options.target.pid)
        const run = await measureRun(options.target, () => options.load(duration), { fixedRate: options.fixedRate })
        log(`${options.label}${count > 1 ? ` (run ${i} of ${count})` : ''}: ${formatRun(run)}`)
        runs.push(run)
      }
      return addRow({ label: options.label, runs, fixedRate: options.fixedRate, kind: options.kind })
    }
    return {
      ...base,
      mainServer,
      startServer,
      startProcess: async (options) => {
        const target = await startProcess(options)
        cleanups.push(target.stop)
        return target
      },
      wrk,
      measureRun,
      measure,
      addRow,
      row: (name) => rows.find((row) => row.scenario === name),
      saturatedGetRate,
      note: (text) => { notes.push(text) },
      log,
      onCleanup: (cleanup) => { cleanups.push(cleanup) }
    }
  }

  let getRate: Promise<number> | undefined
  /** From the get scenario's row when it ran, otherwise one unrecorded measurement now. */
  function saturatedGetRate (): Promise<number> {
    const row = rows.find((one) => one.scenario === 'get')
    if (row) return Promise.resolve(medianOf(row, 'rps'))
    getRate ??= (async () => {
      const server = await mainServer()
      const load = (duration: number) => wrk(server.url, { requests: authenticatedGets(base.tokens), duration })
      if (settings.warmup > 0) await load(settings.warmup)
      const { rps } = await load(settings.duration)
      notes.push(`saturated GET rate (the get scenario did not run), measured once for the fixed-rate loads: ${rps.toFixed(0)} req/s`)
      return rps
    })()
    return getRate
  }

  return { rows, notes, cleanups, apiServers, log, forScenario }
}
