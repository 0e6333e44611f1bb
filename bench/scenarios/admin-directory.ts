// The admin user directory (GET /admin/users) at --scale N users (e.g. 1,000,000), on SQLite and,
// with BENCH_DATABASE_URL, on PostgreSQL: issue 14's goals for the p95 of first pages (no filter,
// a prefix q, a filter), cursor pages, the unfiltered total and match=contains. A query
// benchmark, not a saturation one: one request at a time, from this process to the real server,
// each family's requests cycling through realistic searches; the figures are their p95 per run.
import { join } from 'node:path'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { createTokens } from '../../src/auth/tokens.js'
import { parseDatabaseUrl } from '../../src/config.js'
import { createDb } from '../../src/db/database.js'
import { migrateToLatest } from '../../src/db/migrate.js'
import { median, type Bench, type Goal, type Run, type Scenario } from '../lib/bench.js'
import { createPostgresDatabase } from '../lib/seed.js'
import { ROOT } from '../lib/servers.js'

const FIRST = ('james mary robert patricia john jennifer michael linda david elizabeth william barbara richard susan joseph jessica thomas sarah charles karen ' +
  'christopher lisa daniel nancy matthew betty anthony margaret mark sandra donald ashley steven kimberly paul emily andrew donna joshua michelle ' +
  'kenneth carol kevin amanda brian dorothy george melissa timothy deborah ronald stephanie edward rebecca jason sharon jeffrey laura ryan cynthia ' +
  'jacob kathleen gary amy nicholas angela eric shirley jonathan anna stephen brenda larry pamela justin emma scott nicole brandon helen benjamin ' +
  'samantha samuel katherine gregory christine alexander debra frank rachel patrick carolyn raymond janet jack catherine dennis maria jerry heather ' +
  'tyler diane aaron ruth jose julie adam olivia nathan joyce henry virginia zoë åsa émile józef').split(' ')
const LAST = ('smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez wilson anderson thomas taylor moore ' +
  'jackson martin lee perez thompson white harris sanchez clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores ' +
  'green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart ' +
  'morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson watson brooks ' +
  'chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo sanders patel myers long ross foster jimenez müller øster').split(' ')
const DOMAINS = 'gmail.com yahoo.com outlook.com hotmail.com icloud.com proton.me example.com example.org mail.com aol.com gmx.de web.de fastmail.com'.split(' ')
const SEPARATORS = ['.', '_', '', '-']

/** The seeded users' time span; the newest user signed up at its end. */
const START = Date.parse('2023-01-01T00:00:00Z')
const END = Date.parse('2026-06-01T00:00:00Z')
const ADMIN_SESSION = 'bench-admin'
const FAR_FUTURE = '2099-01-01T00:00:00.000Z'

interface SeedRow {
  id: number
  username: string
  email: string
  role: 'user' | 'admin'
  created: string
  verified: string | null
  status: 'active' | 'suspended'
  until: string | null
  reason: string | null
  lastLogin: string | null
}

/**
 * Users 1..n, the same on every run: names from common first and last names (some accented),
 * 20 administrators, 0.5% suspended (some with an end, passed or not), 70% verified, 60% logged
 * in at least once. The first 50,000 share one created_at (an import, as import-fastapi
 * writes), and every 100,000th user starts a run of 500 more.
 */
function * seedRows (n: number): Generator<SeedRow> {
  let state = 20260601
  const random = () => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0
    return state / 2 ** 32
  }
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)]
  let t = START
  const step = (END - START) / n
  for (let id = 1; id <= n; id++) {
    const first = pick(FIRST)
    const last = pick(LAST)
    const username = `${first}${pick(SEPARATORS)}${last}${id}`
    const email = `${random() < 0.5 ? `${first}.${last}` : `${first[0]}${last}`}${id}@${pick(DOMAINS)}`
    const tied = id <= 50_000 || (id % 100_000 > 0 && id % 100_000 <= 500)
    if (!tied) t += step * 2 * random()
    const created = new Date(Math.min(t, END)).toISOString()
    const suspended = id > 1 && random() < 0.005
    const until = suspended && random() < 0.5 ? new Date(END + (random() - 0.5) * 60 * 86_400_000).toISOString() : null
    yield {
      id,
      username,
      email,
      role: id === 1 || id % 50_000 === 0 ? 'admin' : 'user',
      created,
      verified: random() < 0.7 ? created : null,
      status: suspended ? 'suspended' : 'active',
      until,
      reason: suspended ? 'bench: reported for spam' : null,
      lastLogin: random() < 0.6 ? new Date(Date.parse(created) + random() * (END - Date.parse(created))).toISOString() : null
    }
  }
}

const COLUMNS = ['id', 'username', 'username_normalized', 'email', 'email_normalized', 'hashed_password', 'role', 'created_at', 'updated_at',
  'email_verified_at', 'status', 'suspended_until', 'suspension_reason', 'last_login_at'] as const

function values (row: SeedRow, hashed: string): Array<string | number | null> {
  return [row.id, row.username, row.username.normalize('NFKC').toLowerCase(), row.email, row.email.toLowerCase(), hashed, row.role,
    row.created, row.created, row.verified, row.status, row.until, row.reason, row.lastLogin]
}

async function migrate (databaseUrl: string): Promise<void> {
  const db = createDb(parseDatabaseUrl(databaseUrl, ROOT), { timeoutMs: 60_000 })
  try {
    await migrateToLatest(db)
  } finally {
    await db.close()
  }
}

/**
 * Bulk load: the users table's own indexes (the migrations' CREATE INDEX statements, read back
 * from the schema) are dropped, the rows go in by 100,000 per transaction, the indexes are built
 * again and the statistics gathered. Returns the seconds it took.
 */
export async function seedDirectorySqlite (file: string, users: number, hashed: string): Promise<number> {
  await migrate(`sqlite:///${file}`)
  const started = performance.now()
  const db = new SQLite(file)
  try {
    db.pragma('journal_mode = WAL')
    db.pragma('synchronous = OFF')
    const indexes = db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users' AND sql IS NOT NULL").all() as Array<{ name: string, sql: string }>
    for (const index of indexes) db.exec(`DROP INDEX ${index.name}`)
    const insert = db.prepare(`INSERT INTO users (${COLUMNS.join(', ')}) VALUES (${COLUMNS.map(() => '?').join(', ')})`)
    const load = db.transaction((rows: SeedRow[]) => { for (const row of rows) insert.run(...values(row, hashed)) })
    let batch: SeedRow[] = []
    for (const row of seedRows(users)) {
      batch.push(row)
      if (batch.length === 100_000) { load(batch); batch = [] }
    }
    load(batch)
    // A live session for every third user (the directory counts them) and for the admin's token.
    db.prepare(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip)
      SELECT 'bench-' || id, id, created_at, created_at, created_at, ?, 'bench', '127.0.0.1' FROM users WHERE id % 3 = 0`).run(FAR_FUTURE)
    const now = new Date().toISOString()
    db.prepare(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip) VALUES (?, 1, ?, ?, ?, ?, 'bench', '127.0.0.1')`)
      .run(ADMIN_SESSION, now, now, now, FAR_FUTURE)
    for (const index of indexes) db.exec(index.sql)
    db.exec('ANALYZE')
    db.pragma('wal_checkpoint(TRUNCATE)')
  } finally {
    db.close()
  }
  return (performance.now() - started) / 1000
}

export async function seedDirectoryPostgres (url: string, users: number, hashed: string): Promise<number> {
  await migrate(url)
  const started = performance.now()
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const { rows: indexes } = await client.query<{ indexname: string, indexdef: string }>(`SELECT indexname, indexdef FROM pg_indexes
      WHERE schemaname = current_schema() AND tablename = 'users'
        AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'users'::regclass)`)
    for (const index of indexes) await client.query(`DROP INDEX ${index.indexname}`)
    await client.query('BEGIN')
    const types = ['int4', 'text', 'text', 'text', 'text', 'text', 'text', 'timestamptz', 'timestamptz', 'timestamptz', 'text', 'timestamptz', 'text', 'timestamptz']
    const insert = `INSERT INTO users (${COLUMNS.join(', ')}) OVERRIDING SYSTEM VALUE
      SELECT * FROM unnest(${types.map((type, i) => `$${i + 1}::${type}[]`).join(', ')})`
    let columns: Array<Array<string | number | null>> = COLUMNS.map(() => [])
    const flush = async () => {
      await client.query(insert, columns)
      columns = COLUMNS.map(() => [])
    }
    for (const row of seedRows(users)) {
      values(row, hashed).forEach((value, i) => columns[i].push(value))
      if (columns[0].length === 20_000) await flush()
    }
    if (columns[0].length > 0) await flush()
    await client.query("SELECT setval(pg_get_serial_sequence('users', 'id'), $1::int)", [users])
    await client.query(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip)
      SELECT 'bench-' || id, id, created_at, created_at, created_at, $1, 'bench', '127.0.0.1' FROM users WHERE id % 3 = 0`, [FAR_FUTURE])
    await client.query(`INSERT INTO sessions (id, user_id, created_at, authenticated_at, last_used_at, expires_at, user_agent, ip)
      VALUES ($1, 1, now(), now(), now(), $2, 'bench', '127.0.0.1')`, [ADMIN_SESSION, FAR_FUTURE])
    await client.query('COMMIT')
    for (const index of indexes) await client.query(index.indexdef)
    await client.query('VACUUM ANALYZE users')
    await client.query('VACUUM ANALYZE sessions')
  } finally {
    await client.end()
  }
  return (performance.now() - started) / 1000
}

type Query = Record<string, string>

/** What an administrator types: one letter, a few, a name, a name and number; some match nobody. */
const PREFIXES = ['a', 'j', 'm', 's', 'w', 'k', 'jo', 'ma', 'da', 'ch', 'el', 'br', 'jam', 'mar', 'smi', 'wil', 'pat', 'zoë', 'james', 'maria',
  'jsmith', 'michael.b', 'robert_j', 'linda.garcia1', 'patricia-m', 'dwilson5', 'zzz', 'qx']
/** The filters; `recent` is the week before the newest signup. */
const filters = (recent: string): Query[] => [{ role: 'admin' }, { status: 'suspended' }, { email_verified: 'false' }, { created_from: recent }, { role: 'user', email_verified: 'true' },
  { status: 'active', sort: 'email', order: 'asc' }, { role: 'admin', sort: 'last_login_at' }, { email_verified: 'false', sort: 'username' }, { status: 'suspended', created_from: recent }]
const NEEDLES = ['smith12', 'son', 'garcia9', 'ana', 'x7', 'zzq', '.wil', 'ria_', 'e.m', 'lee4', 'müller', '@web']
/** Listings paged through by their cursors (each page after the first is one cursor request). */
const CHAINS: Query[] = [{}, { sort: 'email', order: 'asc' }, { sort: 'username', order: 'desc' }, { sort: 'last_login_at' }, { sort: 'last_login_at', order: 'asc' },
  { email_verified: 'true' }, { q: 'ma' }, { status: 'active', sort: 'email' }]
const PAGES_PER_CHAIN = 8

interface Timed {
  ms: number
  ok: boolean
  body: { next_cursor: string | null, total: number, total_exact: boolean } | undefined
}

function p95 (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.95) - 1)]
}

/** Measures one database: every family once per run; the run's figures are the families' p95. */
async function measureDirectory (bench: Bench, databaseUrl: string, name: string, dialect: 'sqlite' | 'postgres'): Promise<void> {
  const users = bench.settings.scale
  const server = await bench.startServer(databaseUrl, { name: `${name}, ${users} users (directory)` })
  const token = createTokens({ secret: bench.jwtSecret, issuer: 'user-management-api', audience: 'user-management-api', ttl: 24 * 3600, now: Date.now }).sign(1, ADMIN_SESSION)
  const get = async (query: Query): Promise<Timed> => {
    const url = `${server.url}/admin/users?${new URLSearchParams(query).toString()}`
    const started = performance.now()
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
    const text = await response.text()
    const ms = performance.now() - started
    return { ms, ok: response.status === 200, body: response.status === 200 ? JSON.parse(text) : undefined }
  }
  const newest = await fetch(`${server.url}/admin/users?limit=1`, { headers: { authorization: `Bearer ${token}` } }).then((response) => response.json()) as { users: Array<{ created_at: string }> }
  const FILTERS = filters(new Date(Date.parse(newest.users[0].created_at) - 7 * 86_400_000).toISOString())
  const families: Record<string, () => Promise<Timed[]>> = {
    'first page p95 ms': async () => { const out: Timed[] = []; for (let i = 0; i < 20; i++) out.push(await get({})); return out },
    'prefix q p95 ms': async () => { const out: Timed[] = []; for (const q of PREFIXES) out.push(await get({ q })); return out },
    'filter p95 ms': async () => { const out: Timed[] = []; for (let i = 0; i < 3; i++) for (const filter of FILTERS) out.push(await get(filter)); return out },
    'cursor page p95 ms': async () => {
      const out: Timed[] = []
      for (const chain of CHAINS) {
        let page = await get(chain)
        for (let i = 1; i < PAGES_PER_CHAIN && page.body?.next_cursor; i++) {
          page = await get({ ...chain, cursor: page.body.next_cursor })
          out.push(page)
        }
      }
      return out
    },
    'contains p95 ms': async () => { const out: Timed[] = []; for (const q of NEEDLES) out.push(await get({ q, match: 'contains' })); return out }
  }
  // Warm-up: one pass of every family (the first reads fill the caches), not recorded.
  for (const family of Object.values(families)) await family()
  const unfiltered = await get({})
  bench.note(`${name}, ${users} users: unfiltered total ${unfiltered.body?.total} (${unfiltered.body?.total_exact ? 'exact' : 'estimate'})`)

  const runs: Run[] = []
  for (let run = 1; run <= bench.settings.runs; run++) {
    const extra: Record<string, number> = {}
    let failed = 0
    let max = 0
    for (const [figure, family] of Object.entries(families)) {
      const timed = await family()
      failed += timed.filter((one) => !one.ok).length
      extra[figure] = p95(timed.map((one) => one.ms))
      max = Math.max(max, ...timed.map((one) => one.ms))
    }
    runs.push({ max, errors: 0, non2xx: failed, extra })
    bench.log(`admin directory, ${name} (run ${run} of ${bench.settings.runs}): ${Object.entries(extra).map(([figure, value]) => `${figure.replace(' p95 ms', '')} ${value.toFixed(1)}`).join(', ')} (p95 ms)`)
  }
  await server.stop()

  const medianOfExtra = (figure: string) => median(runs.map((run) => run.extra![figure]))
  const goal = (figure: string, limit: number, text: string): Goal => {
    const all = runs.map((run) => run.extra![figure])
    return { text: `${text} p95 <= ${limit} ms`, met: medianOfExtra(figure) <= limit, detail: `median ${medianOfExtra(figure).toFixed(1)} ms, runs ${Math.min(...all).toFixed(1)}-${Math.max(...all).toFixed(1)}` }
  }
  bench.addRow({
    label: `GET /admin/users, ${name}, ${users} users`,
    runs,
    goals: [
      goal('first page p95 ms', 50, 'first page, no filter'),
      goal('prefix q p95 ms', 50, 'first page, prefix q'),
      goal('filter p95 ms', 50, 'first page, a filter'),
      goal('cursor page p95 ms', 20, 'cursor page'),
      goal('first page p95 ms', dialect === 'sqlite' ? 100 : 150, 'total with no filter (the unfiltered first page carries it)'),
      goal('contains p95 ms', dialect === 'sqlite' ? 500 : 150, 'match=contains')
    ]
  })
}

export const adminDirectory: Scenario = {
  name: 'admin-directory',
  description: 'GET /admin/users with --scale N users, one request at a time: p95 of first pages (no filter, prefix q, filter), cursor pages, ' +
    'match=contains; SQLite, and PostgreSQL with BENCH_DATABASE_URL',
  optIn: true,
  requires: { option: '--scale N', given: (settings) => settings.scale > 0 },
  async run (bench) {
    const users = bench.settings.scale
    const file = join(bench.dir, 'directory.db')
    const seconds = await seedDirectorySqlite(file, users, bench.hashed)
    bench.note(`admin directory: seeded ${users} users into SQLite in ${seconds.toFixed(1)} s (bulk load, indexes built after)`)
    await measureDirectory(bench, `sqlite:///${file}`, 'SQLite', 'sqlite')
    if (bench.settings.postgresUrl === undefined) {
      bench.note('admin directory: PostgreSQL not measured (set BENCH_DATABASE_URL)')
      return
    }
    const database = await createPostgresDatabase(bench.settings.postgresUrl, `uma_bench_directory_${bench.runId}`)
    bench.onCleanup(database.drop)
    const pgSeconds = await seedDirectoryPostgres(database.url, users, bench.hashed)
    bench.note(`admin directory: seeded ${users} users into PostgreSQL in ${pgSeconds.toFixed(1)} s (unnest batches, indexes built after)`)
    await measureDirectory(bench, database.url, 'PostgreSQL', 'postgres')
    await database.drop()
  }
}
