// npm run bench [-- options]: load benchmarks of the real built server, run as a child process
// and loaded by wrk from the same machine (server and load generator share its cores; that is the
// rule here). Each scenario is a file in bench/scenarios/; this runner reads the options, runs
// the scenarios in order, prints the table and the goals, writes bench/results/latest.json and
// the SVG charts, and exits 1 if any request failed (with --check, also if a goal was missed).
// Not part of npm test.
//
// Adding a scenario: write bench/scenarios/<name>.ts exporting a `Scenario` (bench/lib/bench.ts
// says what it gets; workers.ts is the shortest example, soak.ts reports figures of its own in
// `Run.extra`, login.ts measures its runs one by one), and add it to SCENARIOS below.
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir, totalmem } from 'node:os'
import { basename, join, relative, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { hashPassword } from './lib/argon2.js'
import { createBench, type Scenario, type Settings } from './lib/bench.js'
import { writeCharts } from './lib/charts.js'
import { failures, formatGoals, formatTable, rowJson } from './lib/report.js'
import { mintTokens, seedSqlite } from './lib/seed.js'
import { ROOT } from './lib/servers.js'
import { ensureWrk } from './lib/wrk.js'
import { adminDirectory } from './scenarios/admin-directory.js'
import { ceiling } from './scenarios/ceiling.js'
import { fastapi, FASTAPI_PACKAGES } from './scenarios/fastapi.js'
import { flood } from './scenarios/flood.js'
import { get } from './scenarios/get.js'
import { leanFastify } from './scenarios/lean-fastify.js'
import { lean } from './scenarios/lean.js'
import { login } from './scenarios/login.js'
import { pg } from './scenarios/pg.js'
import { rate } from './scenarios/rate.js'
import { scale } from './scenarios/scale.js'
import { signup } from './scenarios/signup.js'
import { soak } from './scenarios/soak.js'
import { workers } from './scenarios/workers.js'

/**
 * In the order they run: a scenario may compare itself with the rows of those before it (the
 * ceiling and the lean route first, get before the scenarios that use its rate).
 */
const SCENARIOS: Scenario[] = [ceiling, lean, leanFastify, get, rate, workers, login, signup, flood, soak, scale, pg, adminDirectory, fastapi]

const RESULTS = join(ROOT, 'bench/results')

/** A mistake in how the bench was called, or a missing tool: its message is all the user needs. */
class UsageError extends Error {}

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    runs: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '100' },
    threads: { type: 'string', default: '1' },
    users: { type: 'string', default: '10000' },
    tokens: { type: 'string', default: '10000' },
    scale: { type: 'string', default: '0' },
    soak: { type: 'string', default: '0' },
    only: { type: 'string', default: '' },
    'request-log': { type: 'string', default: 'all' },
    charts: { type: 'string', default: '' },
    'skip-build': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    fastapi: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})

if (args.help) {
  const width = Math.max(...SCENARIOS.map((scenario) => scenario.name.length))
  console.log(`npm run bench -- [options]
  --duration S        seconds per measured run (default 10)
  --runs N            measured runs per scenario; the table shows each figure's min-max over them (default 3)
  --warmup S          seconds of unrecorded load before a scenario's runs (default 3)
  --connections N     concurrent connections (default 100)
  --threads N         wrk threads (default 1)
  --users N           users seeded into the database (default 10000)
  --tokens N          distinct sessions/tokens the GET load cycles through (default 10000)
  --scale N           also seed N users (e.g. 1000000): GET compared with the --users figure, and the admin
                      directory's queries (admin-directory; PostgreSQL too with BENCH_DATABASE_URL)
  --soak S            also run GET for S seconds and compare RSS in the first and last minute
  --fastapi           also measure bench/fastapi-reference (our rebuild of the FastAPI app) the same way;
                      needs /usr/bin/python3 with fastapi, uvicorn, sqlalchemy, passlib, bcrypt, jwt, email-validator
                      (Debian: apt-get install ${FASTAPI_PACKAGES})
  --only a,b          run only these scenarios (--scale, --soak and --fastapi add theirs)
  --request-log M     REQUEST_LOG of the server (all | errors; default all, the production default)
  --charts DIR        also copy the run's SVG charts into DIR (relative to the repository), e.g. docs/
  --skip-build        use dist/ as it is
  --profile           run our server and the lean routes with --cpu-prof (profiles land in bench/results/)
  --check             exit 1 when a goal is missed (always exit 1 when a request failed)
  BENCH_DATABASE_URL  a PostgreSQL server URL: adds GET on PostgreSQL (a fresh database is created and dropped)
  BENCH_START         a shell command to start the server instead of package.json's start script (A/B runs)
  BENCH_SERVER_X=v    sets X=v in the server's environment (A/B runs of a setting)

Scenarios, in the order they run:
${SCENARIOS.map((scenario) => `  ${scenario.name.padEnd(width)}  ${scenario.description}${scenario.requires ? ` [needs ${scenario.requires.option}]` : ''}`).join('\n')}

The load generator is wrk (Debian's package \`wrk\`; installed with apt-get when missing and run as root).
Results: bench/results/latest.json, bench/results/bench-throughput.svg and bench-latency.svg.`)
  process.exit(0)
}

function count (name: string, value: string, minimum: number): number {
  const number = Number(value)
  if (!Number.isInteger(number) || number < minimum) throw new UsageError(`--${name} must be a whole number >= ${minimum}, not "${value}"`)
  return number
}

function readSettings (): Settings {
  const users = count('users', args.users!, 1)
  if (!['all', 'errors'].includes(args['request-log']!)) throw new UsageError(`--request-log must be all or errors, not "${args['request-log']}"`)
  return {
    duration: count('duration', args.duration!, 1),
    runs: count('runs', args.runs!, 1),
    warmup: count('warmup', args.warmup!, 0),
    connections: count('connections', args.connections!, 1),
    threads: count('threads', args.threads!, 1),
    users,
    tokens: Math.min(count('tokens', args.tokens!, 1), users),
    scale: count('scale', args.scale!, 0),
    soak: count('soak', args.soak!, 0),
    requestLog: args['request-log']!,
    profile: args.profile!,
    fastapi: args.fastapi!,
    postgresUrl: process.env.BENCH_DATABASE_URL || undefined,
    hashConcurrency: availableParallelism(),
    // The server is started by the start script itself (without its prestart build), so the
    // bench measures what `npm start` runs: the same node flags and environment defaults.
    startScript: process.env.BENCH_START ??
      (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start,
    // Issue 16's --node MAJOR goes here: the node binary (and its version) the servers run on.
    node: { version: process.version, path: process.execPath }
  }
}

/** The scenarios to run: all (or --only's) that can, and those an option asked for. */
function selectScenarios (settings: Settings): Scenario[] {
  const only = args.only ? args.only.split(',').map((name) => name.trim()).filter(Boolean) : []
  const unknown = only.filter((name) => !SCENARIOS.some((scenario) => scenario.name === name))
  if (unknown.length > 0) throw new UsageError(`unknown scenario ${unknown.join(', ')} in --only (known: ${SCENARIOS.map((scenario) => scenario.name).join(', ')})`)
  const given = (scenario: Scenario) => !scenario.requires || scenario.requires.given(settings)
  const impossible = SCENARIOS.filter((scenario) => only.includes(scenario.name) && !given(scenario))
  if (impossible.length > 0) throw new UsageError(impossible.map((scenario) => `--only ${scenario.name} needs ${scenario.requires!.option}`).join('; '))
  return SCENARIOS.filter((scenario) => given(scenario) && (only.length === 0 || only.includes(scenario.name) || scenario.optIn))
}

function machine () {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), memoryGb: Math.round(totalmem() / 2 ** 30), platform: `${process.platform} ${process.arch}` }
}

async function main (cleanups: Array<() => Promise<void> | void>): Promise<number> {
  const settings = readSettings()
  const selected = selectScenarios(settings)
  const log = (line: string) => { process.stderr.write(`bench: ${line}\n`) }
  let wrkPath: string
  try {
    wrkPath = ensureWrk(log)
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
  const wrkVersion = spawnSync(wrkPath, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0].replace(/\s*Copyright.*$/, '')
  if (!args['skip-build']) {
    log('building (npm run build)')
    const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
    if (build.status !== 0) throw new Error('build failed')
  }
  const dir = mkdtempSync(join(tmpdir(), 'uma-bench-'))
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }))

  const password = 'bench-Password-2026'
  const hashed = await hashPassword(password)
  const jwtSecret = randomBytes(32).toString('base64url')
  const sqliteFile = join(dir, 'users.db')
  const seconds = await seedSqlite(sqliteFile, settings.users, hashed)
  const state = createBench({
    settings,
    wrkPath,
    dir,
    password,
    hashed,
    jwtSecret,
    runId: randomBytes(3).toString('hex'),
    sqlite: { file: sqliteFile, url: `sqlite:///${sqliteFile}` },
    tokens: mintTokens(jwtSecret, settings.users, settings.tokens)
  })
  cleanups.push(async () => {
    for (const cleanup of state.cleanups.reverse()) {
      try {
        await cleanup()
      } catch { /* best effort */ }
    }
  })
  state.notes.push(`seeded ${settings.users} users and sessions into SQLite in ${seconds.toFixed(1)} s`)

  const crashed: string[] = []
  for (const scenario of selected) {
    log(`scenario ${scenario.name}: ${scenario.description}`)
    try {
      await scenario.run(state.forScenario(scenario.name))
    } catch (error) {
      console.error(error)
      crashed.push(scenario.name)
      state.notes.push(`scenario ${scenario.name} FAILED: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`)
    }
  }

  // The RSS goal covers each single-process instance of our server the run started (10k and 1M
  // users on SQLite, PostgreSQL); WORKERS=auto is several processes by design and has its own row.
  if (state.apiServers.length > 0) {
    const peak = Math.max(...state.apiServers.map((server) => server.target.rss.peak()))
    state.forScenario('rss').addRow({
      label: 'server RSS peak over the run',
      runs: [{ rssMb: peak }],
      goals: [{ text: 'RSS peak < 150 MB', met: peak < 150, detail: `${peak.toFixed(0)} MB; servers: ${state.apiServers.map((server) => server.name).join(', ')}` }]
    })
  }

  const m = machine()
  const header = `${m.cpu}, ${m.cores} cores, ${m.memoryGb} GiB, node ${process.version}; ${wrkVersion}, ${settings.threads} thread(s), ${settings.connections} connections; ` +
    `${settings.runs} run(s) of ${settings.duration} s per scenario after ${settings.warmup} s of warm-up; ${settings.users} users, ${settings.tokens} tokens, REQUEST_LOG=${settings.requestLog}; server: ${settings.startScript}`
  console.log(`\n${header}`)
  for (const line of formatTable(state.rows)) console.log(line)
  const goals = formatGoals(state.rows)
  if (goals.length > 0) console.log(`\nGoals${args.check ? '' : ' (exit 1 when missed with --check)'}:\n${goals.map((line) => `  ${line}`).join('\n')}`)
  if (state.notes.length > 0) console.log(`\n${state.notes.map((note) => `- ${note}`).join('\n')}`)

  mkdirSync(RESULTS, { recursive: true })
  const at = new Date().toISOString()
  const charts = writeCharts(state.rows, RESULTS, `${at.slice(0, 10)}, ${m.cpu} (${m.cores} cores), node ${process.version}, ${wrkVersion.replace(/ \[.*$/, '')}, ${settings.connections} connections, ${settings.duration} s per run`)
  const results = {
    at,
    node: process.version,
    machine: m,
    loadGenerator: wrkVersion,
    settings: { ...settings, postgresUrl: settings.postgresUrl ? '(set)' : undefined },
    scenarios: selected.map((scenario) => scenario.name),
    rows: state.rows.map(rowJson),
    notes: state.notes
  }
  writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify(results, null, 2) + '\n')
  console.log(`\nwritten: ${[join(RESULTS, 'latest.json'), ...charts].map((file) => relative(ROOT, file)).join(', ')}`)
  if (args.charts) {
    const target = resolve(ROOT, args.charts)
    mkdirSync(target, { recursive: true })
    const copies = charts.map((file) => join(target, basename(file)))
    charts.forEach((file, i) => copyFileSync(file, copies[i]))
    console.log(`copied: ${copies.map((file) => relative(ROOT, file)).join(', ')}`)
  }

  const failed = state.rows.filter((row) => failures(row) > 0)
  if (failed.length > 0) console.error(`FAILED requests in: ${failed.map((row) => row.label).join(', ')}`)
  if (crashed.length > 0) console.error(`FAILED scenarios: ${crashed.join(', ')}`)
  if (failed.length > 0 || crashed.length > 0) return 1
  const missed = state.rows.filter((row) => row.goals.some((goal) => !goal.met))
  if (args.check && missed.length > 0) {
    console.error(`goals missed: ${missed.map((row) => row.label).join(', ')}`)
    return 1
  }
  return 0
}

const cleanups: Array<() => Promise<void> | void> = []
let code = 1
try {
  code = await main(cleanups)
} catch (error) {
  console.error(error instanceof UsageError ? `npm run bench: ${error.message}` : error)
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup()
    } catch { /* best effort */ }
  }
}
process.exit(code)
