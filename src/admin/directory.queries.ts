import { createHash } from 'node:crypto'
import { sql, type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type SqlBool } from 'kysely'
import type { Dialect } from '../config.js'
import type { AccountStatus, Database, Role } from '../db/database.js'
import { errors } from '../errors.js'
import { normalizeEmail, normalizeUsername } from '../users/identity.js'
import { selectAdminUsers } from './admin.queries.js'

// The admin user directory: one filter builder serves the count and the page, so they always
// agree, and keyset pagination on (sort key, id) so that a page never repeats or skips anyone,
// however many users share a sort key and whoever signs up meanwhile.
//
// How a page is read (the plans are checked by test/admin-directory-plans.test.ts):
// - `total`: the matching users counted up to TOTAL_CAP + 1, through whichever index suits the
//   filter (email/username ranges for a prefix, role, status, ...). No filter: the count SQLite's
//   triggers keep, or the catalog's estimate (PostgreSQL).
// - The page walks from the cursor in segments: (key = v and id after i), then (key after v),
//   then (key is null) for the last login. Each is an index seek on both databases; a single
//   (key, id) > (v, i) comparison is not one in SQLite, which would scan a long run of equal keys.
// - PostgreSQL's planner then picks, for each segment, between walking the sort key's index and
//   keeping the rows that match, or reading the matches through the filter's index and sorting
//   them; its statistics make that choice well. SQLite's planner does not (at a million users it
//   took the role index for role=user and sorted every row: 2.7 s), so there the choice is ours:
//   at most walkThreshold matches are read by id and sorted; more, and the walk writes every
//   filter column `+column` (a no-op that keeps SQLite off its index).
// - SQLite reads all this in one transaction (one snapshot; in process, so a query costs no
//   round trip); PostgreSQL in one statement (postgresPageStatement: one round trip, one snapshot).

export type SortKey = 'created_at' | 'email' | 'username' | 'last_login_at'
export type SortOrder = 'asc' | 'desc'

/** Matching users are counted up to this; beyond it, total = TOTAL_CAP and total_exact = false. */
export const TOTAL_CAP = 10_000

export interface DirectoryFilter {
  q?: { text: string, match: 'prefix' | 'contains' }
  role?: Role
  status?: AccountStatus
  emailVerified?: boolean
  /** ISO-8601 UTC, inclusive. */
  createdFrom?: string
  /** ISO-8601 UTC, exclusive. */
  createdBefore?: string
}

export interface DirectoryQuery {
  filter: DirectoryFilter
  sort: SortKey
  order: SortOrder
  limit: number
  /** The cursor (already checked against this query by decodeCursor). */
  after?: CursorPosition
}

/** The last row of a page: its sort key (as the database prints it; null: never logged in) and id. */
export interface CursorPosition {
  key: string | null
  id: number
}

type Eb = ExpressionBuilder<Database, 'users'>
type Condition = (eb: Eb) => Expression<SqlBool>
/** A condition of the filter, and whether the walk keeps it off its column's index. */
type FilterTerm = (eb: Eb, column: (name: FilterColumn) => RawBuilder<unknown>) => Expression<SqlBool>
type FilterColumn = 'email_normalized' | 'username_normalized' | 'role' | 'status' | 'suspended_until' | 'email_verified_at' | 'created_at'

const SORT_COLUMNS = { created_at: 'created_at', email: 'email_normalized', username: 'username_normalized', last_login_at: 'last_login_at' } as const

/** The sort key's column as compared and ordered: code points for text in PostgreSQL too. */
function sortKey (dialect: Dialect, sort: SortKey): RawBuilder<unknown> {
  const column = sql.ref(`users.${SORT_COLUMNS[sort]}`)
  return dialect === 'postgres' && (sort === 'email' || sort === 'username') ? sql`${column} collate "C"` : column
}

/** The smallest string greater than every string starting with `prefix` (code point order), if any. */
export function prefixUpperBound (prefix: string): string | undefined {
  const points = [...prefix].map((char) => char.codePointAt(0)!)
  while (points.length > 0) {
    let last = points.pop()! + 1
    if (last === 0xD800) last = 0xE000
    if (last <= 0x10FFFF) return String.fromCodePoint(...points, last)
  }
  return undefined
}

/** `%`, `_` and the escape character itself are literal in a LIKE pattern (ESCAPE '\'). */
export function escapeLike (text: string): string {
  return text.replace(/[\\%_]/g, (char) => `\\${char}`)
}

/**
 * The filter as conditions, built once for the count and the page alike: `q` as its two sides
 * (email, username; the filter holds when either does), then the other terms, all AND-ed.
 */
function filterTerms (dialect: Dialect, filter: DirectoryFilter, now: string): { q?: [FilterTerm, FilterTerm], others: FilterTerm[] } {
  const others: FilterTerm[] = []
  let q: [FilterTerm, FilterTerm] | undefined
  const text = (column: RawBuilder<unknown>) => dialect === 'postgres' ? sql`${column} collate "C"` : column
  if (filter.q !== undefined) {
    const email = normalizeEmail(filter.q.text)
    const username = normalizeUsername(filter.q.text).trim()
    if (filter.q.match === 'contains') {
      const contains = (name: FilterColumn, part: string): FilterTerm => (eb, column) => eb(column(name), 'like', sql<string>`${`%${escapeLike(part)}%`} escape '\\'`)
      q = [contains('email_normalized', email), contains('username_normalized', username)]
    } else {
      const range = (name: FilterColumn, prefix: string): FilterTerm => (eb, column) => {
        const upper = prefixUpperBound(prefix)
        return eb.and([eb(text(column(name)), '>=', prefix), ...(upper === undefined ? [] : [eb(text(column(name)), '<', upper)])])
      }
      q = [range('email_normalized', email), range('username_normalized', username)]
    }
  }
  if (filter.role !== undefined) {
    const role = filter.role
    others.push((eb, column) => eb(column('role'), '=', role))
  }
  if (filter.status === 'suspended') {
    others.push((eb, column) => eb.and([eb(column('status'), '=', 'suspended'), eb.or([eb(column('suspended_until'), 'is', null), eb(column('suspended_until'), '>', now)])]))
  } else if (filter.status === 'active') {
    // Active rows never carry a suspended_until (unsuspending clears it); a suspension past it is over.
    others.push((eb, column) => eb.or([eb(column('status'), '=', 'active'), eb(column('suspended_until'), '<=', now)]))
  }
  if (filter.emailVerified !== undefined) {
    const verified = filter.emailVerified
    others.push((eb, column) => eb(column('email_verified_at'), verified ? 'is not' : 'is', null))
  }
  if (filter.createdFrom !== undefined) {
    const from = filter.createdFrom
    others.push((eb, column) => eb(column('created_at'), '>=', from))
  }
  if (filter.createdBefore !== undefined) {
    const before = filter.createdBefore
    others.push((eb, column) => eb(column('created_at'), '<', before))
  }
  return { q, others }
}

const indexable = (name: FilterColumn) => sql.ref(`users.${name}`)

/**
 * The filter as one condition. `walk`: the page walks the sort key's index; SQLite then gets every
 * other column as `+column` so that it cannot pick that column's index instead.
 */
function filterCondition (dialect: Dialect, filter: DirectoryFilter, now: string, walk?: SortKey): Condition | undefined {
  const { q, others } = filterTerms(dialect, filter, now)
  if (q === undefined && others.length === 0) return undefined
  const column = walk === undefined || dialect !== 'sqlite'
    ? indexable
    : (name: FilterColumn) => name === SORT_COLUMNS[walk] ? indexable(name) : sql`+${sql.ref(`users.${name}`)}`
  return (eb) => eb.and([...(q === undefined ? [] : [eb.or(q.map((side) => side(eb, column)))]), ...others.map((term) => term(eb, column))])
}

export function hasFilter (filter: DirectoryFilter): boolean {
  return filter.q !== undefined || filter.role !== undefined || filter.status !== undefined ||
    filter.emailVerified !== undefined || filter.createdFrom !== undefined || filter.createdBefore !== undefined
}

/** SQLite: the ids of up to TOTAL_CAP + 1 matching users, in no order (read when they are few). */
export function candidatesQuery (db: Kysely<Database>, dialect: Dialect, filter: DirectoryFilter, now: string) {
  const condition = filterCondition(dialect, filter, now)
  let query = db.selectFrom('users').select('users.id').limit(TOTAL_CAP + 1)
  if (condition !== undefined) query = query.where(condition)
  return query
}

/**
 * How many users match, counted up to TOTAL_CAP + 1. On PostgreSQL a prefix search counts its two
 * sides as disjoint halves (email matches; username matches whose email does not), so that
 * each reads its own index, index-only, and stops at the cap: as one OR, PostgreSQL would read
 * every entry of both ranges into a bitmap before counting (30 ms for "ma" at a million users).
 */
export function cappedCountQuery (db: Kysely<Database>, dialect: Dialect, filter: DirectoryFilter, now: string) {
  const { q, others } = filterTerms(dialect, filter, now)
  const matching = (sides: Condition[]) => {
    let query = db.selectFrom('users').select('users.id')
    for (const condition of [...sides, ...others.map((term): Condition => (eb) => term(eb, indexable))]) query = query.where(condition)
    return query
  }
  if (dialect === 'postgres' && q !== undefined && filter.q?.match === 'prefix') {
    const [email, username] = q.map((side): Condition => (eb) => side(eb, indexable))
    // Kysely puts each query in parentheses; the whole is one more.
    const halves = sql`(${matching([email])} union all ${matching([username, (eb) => eb.not(email(eb))])} limit ${TOTAL_CAP + 1})`
    return db.selectFrom(halves.as('matching')).select((eb) => eb.fn.countAll<number>().as('n'))
  }
  const condition = filterCondition(dialect, filter, now)
  let all = db.selectFrom('users').select(sql<number>`1`.as('one')).limit(TOTAL_CAP + 1)
  if (condition !== undefined) all = all.where(condition)
  return db.selectFrom(all.as('matching')).select((eb) => eb.fn.countAll<number>().as('n'))
}

export interface Segment {
  where: Condition[]
  order: Array<{ key: 'sort' | 'id', direction: SortOrder }>
}

/**
 * The rest of the order after the cursor, as segments that follow one another (see the top of
 * this file). Null last-login keys come last in descending order and first in ascending order.
 */
export function segmentsAfter (dialect: Dialect, sort: SortKey, order: SortOrder, after: CursorPosition | undefined): Segment[] {
  const key = sortKey(dialect, sort)
  const id = sql.ref('users.id')
  // Every segment is ordered by (key, id), even where the key is one value: that is the order of
  // the key's index, so both databases read the index (ordered by id, SQLite would pick the
  // primary key and filter, PostgreSQL too when the run of equal keys looks short).
  const full: Segment['order'] = [{ key: 'sort', direction: order }, { key: 'id', direction: order }]
  if (after === undefined) return [{ where: [], order: full }]
  const beyond = order === 'desc' ? '<' : '>'
  const nullable = sort === 'last_login_at'
  if (after.key === null) {
    if (!nullable) throw new Error('a null cursor key for a column that is never null')
    const nulls: Segment = { where: [(eb) => eb(key, 'is', null), (eb) => eb(id, beyond, after.id)], order: full }
    return order === 'desc' ? [nulls] : [nulls, { where: [(eb) => eb(key, 'is not', null)], order: full }]
  }
  const value = after.key
  const segments: Segment[] = [
    { where: [(eb) => eb(key, '=', value), (eb) => eb(id, beyond, after.id)], order: full },
    { where: [(eb) => eb(key, beyond, value)], order: full }
  ]
  if (nullable && order === 'desc') segments.push({ where: [(eb) => eb(key, 'is', null)], order: full })
  return segments
}

/** What a page row carries: the admin view of the user and the cursor's key. */
function pageSelect (db: Kysely<Database>, dialect: Dialect, sort: SortKey, now: string) {
  const key = sortKey(dialect, sort)
  // The key as the database prints it: a PostgreSQL timestamp keeps its microseconds.
  return selectAdminUsers(db, now).select((dialect === 'postgres' ? sql<string | null>`${key}::text` : sql<string | null>`${key}`).as('cursor_key'))
}

/** ORDER BY terms for a segment's order. */
function orderTerms (dialect: Dialect, sort: SortKey, order: Segment['order']): RawBuilder<unknown>[] {
  const key = sortKey(dialect, sort)
  return order.map((item) => {
    const direction = sql.raw(item.direction)
    if (item.key === 'id') return sql`${sql.ref('users.id')} ${direction}`
    // Never-logged-in users sort below everyone, as SQLite orders nulls; PostgreSQL must be told.
    if (sort === 'last_login_at') return sql`${key} ${direction} ${sql.raw(item.direction === 'desc' ? 'nulls last' : 'nulls first')}`
    return sql`${key} ${direction}`
  })
}

/** SQLite, few candidates: their rows after the cursor, read by id and sorted. */
export function pageByIdsQuery (db: Kysely<Database>, query: DirectoryQuery, ids: number[], now: string) {
  const dialect = 'sqlite'
  const segments = segmentsAfter(dialect, query.sort, query.order, query.after)
  let base = pageSelect(db, dialect, query.sort, now)
    .where(sql<SqlBool>`${sql.ref('users.id')} in (select value from json_each(${JSON.stringify(ids)}))`)
    .where((eb) => eb.or(segments.map((segment) => eb.and(segment.where.map((condition) => condition(eb))))))
    .limit(query.limit + 1)
  for (const term of orderTerms(dialect, query.sort, [{ key: 'sort', direction: query.order }, { key: 'id', direction: query.order }])) base = base.orderBy(term)
  return base
}

/** One segment of the walk along the sort key's index (SQLite: with many candidates, or no filter). */
export function walkSegmentQuery (db: Kysely<Database>, dialect: Dialect, query: DirectoryQuery, segment: Segment, limit: number, now: string) {
  const condition = filterCondition(dialect, query.filter, now, query.sort)
  let base = pageSelect(db, dialect, query.sort, now).limit(limit)
  if (condition !== undefined) base = base.where(condition)
  for (const where of segment.where) base = base.where(where)
  for (const term of orderTerms(dialect, query.sort, segment.order)) base = base.orderBy(term)
  return base
}

export type DirectoryRow = Awaited<ReturnType<ReturnType<typeof pageSelect>['execute']>>[number]

export interface DirectoryPage {
  rows: DirectoryRow[]
  /** Set when there is a page after this one. */
  next?: CursorPosition
  total: number
  totalExact: boolean
}

/**
 * SQLite: below this many candidates, reading them by id and sorting beats walking the index: a walk
 * reads about (limit + 1) x users / matches rows to fill a page. Measured at a million users
 * (SQLite): a row read by id in random order costs about 6 us; walking in created_at order,
 * which follows insertion order, about an eighth of that; other sort keys read in random order.
 */
export function walkThreshold (sort: SortKey, limit: number, users: number): number {
  const walkCost = sort === 'created_at' ? 1 / 8 : 1
  return Math.min(TOTAL_CAP, Math.ceil(Math.sqrt((limit + 1) * Math.max(1, users) * walkCost)))
}

/** SQLite: every user, as the count its triggers keep (exact, one row). */
async function countAllSqlite (db: Kysely<Database>): Promise<number> {
  const row = await db.selectFrom('users_count').select('n').executeTakeFirstOrThrow()
  return Number(row.n)
}

/** One page of the directory and its total, read from one snapshot of the database. */
export async function readDirectoryPage (db: Kysely<Database>, dialect: Dialect, query: DirectoryQuery, now: string): Promise<DirectoryPage> {
  const { rows, total, totalExact } = dialect === 'postgres'
    ? await readPostgres(db, query, now)
    // One transaction: the count and the page see the same users, even while others sign up.
    : await db.transaction().execute((trx) => readSqlite(trx, query, now))
  const more = rows.length > query.limit
  const page = more ? rows.slice(0, query.limit) : rows
  const last = page.at(-1)
  return { rows: page, total, totalExact, next: more && last !== undefined ? { key: last.cursor_key, id: last.id } : undefined }
}

async function readSqlite (trx: Kysely<Database>, query: DirectoryQuery, now: string): Promise<{ rows: DirectoryRow[], total: number, totalExact: boolean }> {
  const users = await countAllSqlite(trx)
  if (!hasFilter(query.filter)) return { rows: await walk(trx, 'sqlite', query, now), total: users, totalExact: true }
  // Counted by SQLite itself (no row reaches JavaScript); the ids are read only when few.
  const counted = Number((await cappedCountQuery(trx, 'sqlite', query.filter, now).executeTakeFirstOrThrow()).n)
  const threshold = walkThreshold(query.sort, query.limit, users)
  let rows: DirectoryRow[] = []
  if (counted > threshold) {
    rows = await walk(trx, 'sqlite', query, now)
  } else if (counted > 0) {
    const ids = (await candidatesQuery(trx, 'sqlite', query.filter, now).limit(threshold + 1).execute()).map((row) => row.id)
    rows = await pageByIdsQuery(trx, query, ids, now).execute()
  }
  return { rows, total: Math.min(counted, TOTAL_CAP), totalExact: counted <= TOTAL_CAP }
}

export type PostgresPageRow = Partial<DirectoryRow> & { total_n: number | string, exact: boolean }

/**
 * PostgreSQL: the count and every segment of the walk in one statement, so one round trip and
 * one snapshot. The segments are UNION ALL-ed, each with its number and its rows' rank in its
 * own (index) order, which the outer ORDER BY keeps; each child stops at limit + 1 rows. With no
 * filter the total is the catalog's estimate once the table holds TOTAL_CAP users, else a count.
 */
export function postgresPageStatement (db: Kysely<Database>, query: DirectoryQuery, now: string): RawBuilder<PostgresPageRow> {
  const dialect = 'postgres'
  const parts = segmentsAfter(dialect, query.sort, query.order, query.after).map((segment, i) =>
    walkSegmentQuery(db, dialect, query, segment, query.limit + 1, now)
      .select([sql<number>`${sql.lit(i)}`.as('segment'), sql<number>`row_number() over (order by ${sql.join(orderTerms(dialect, query.sort, segment.order))})`.as('ordinal')]))
  const page = parts.slice(1).reduce<RawBuilder<unknown>>((union, part) => sql`${union} union all (${part})`, sql`(${parts[0]})`)
  const total = hasFilter(query.filter)
    ? sql`select n as total_n, n <= ${TOTAL_CAP} as exact from (${cappedCountQuery(db, dialect, query.filter, now)}) as counted`
    : sql`select coalesce(exact_n, estimate) as total_n, exact_n is not null as exact
        from (select reltuples::int8 as estimate from pg_class where oid = 'users'::regclass) as e,
        lateral (select case when e.estimate >= ${TOTAL_CAP} then null else (select count(*) from users) end as exact_n) as x`
  return sql<PostgresPageRow>`with page as (${page}), total as (${total})
    select page.*, total.total_n, total.exact from total left join page on true order by page.segment, page.ordinal`
}

async function readPostgres (db: Kysely<Database>, query: DirectoryQuery, now: string): Promise<{ rows: DirectoryRow[], total: number, totalExact: boolean }> {
  const { rows } = await postgresPageStatement(db, query, now).execute(db)
  const counted = Number(rows[0]?.total_n ?? 0)
  const totalExact = rows[0]?.exact === true
  return {
    rows: rows.filter((row) => row.id !== null && row.id !== undefined) as DirectoryRow[],
    // Filtered and past the cap: the cap. Unfiltered: the count, or the estimate.
    total: !totalExact && hasFilter(query.filter) ? TOTAL_CAP : counted,
    totalExact
  }
}

async function walk (db: Kysely<Database>, dialect: Dialect, query: DirectoryQuery, now: string): Promise<DirectoryRow[]> {
  const rows: DirectoryRow[] = []
  for (const segment of segmentsAfter(dialect, query.sort, query.order, query.after)) {
    const wanted = query.limit + 1 - rows.length
    rows.push(...await walkSegmentQuery(db, dialect, query, segment, wanted, now).execute())
    if (rows.length > query.limit) break
  }
  return rows
}

// Cursors are opaque to clients: base64url of [key, id, sort, order, fingerprint of the filter].
// A cursor only continues the query that produced it (same filter, sort and order): anything
// else is a 400, never a silently different list.

const TIMESTAMP_TEXT = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(\.\d{1,6})?(Z|[+-](\d\d)(:?\d\d)?)$/

/** An ISO-8601 timestamp as SQLite stores it or PostgreSQL prints it, naming a real moment. */
function isTimestampText (text: string): boolean {
  const match = TIMESTAMP_TEXT.exec(text)
  if (!match) return false
  const [year, month, day, hour, minute, second] = match.slice(1, 7).map(Number)
  const date = new Date(Date.UTC(year, month - 1, day))
  return date.getUTCMonth() === month - 1 && date.getUTCDate() === day && hour < 24 && minute < 60 && second < 60 && Number(match[9] ?? 0) < 16
}

function fingerprint (query: Omit<DirectoryQuery, 'after' | 'limit'>): string {
  const { filter, sort, order } = query
  return createHash('sha256').update(JSON.stringify([filter.q?.text ?? null, filter.q?.match ?? null, filter.role ?? null, filter.status ?? null,
    filter.emailVerified ?? null, filter.createdFrom ?? null, filter.createdBefore ?? null, sort, order])).digest('base64url').slice(0, 16)
}

export function encodeCursor (query: Omit<DirectoryQuery, 'after' | 'limit'>, position: CursorPosition): string {
  return Buffer.from(JSON.stringify([position.key, position.id, fingerprint(query)])).toString('base64url')
}

/** The cursor's position, or a 400 that says why it cannot continue this query. */
export function decodeCursor (query: Omit<DirectoryQuery, 'after' | 'limit'>, cursor: string): CursorPosition {
  const invalid = () => errors.badRequest('cursor: is not a cursor returned by this endpoint')
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  if (!Array.isArray(parsed) || parsed.length !== 3) throw invalid()
  const [key, id, print] = parsed as unknown[]
  if (!Number.isSafeInteger(id) || (id as number) < 1 || typeof print !== 'string') throw invalid()
  if (print !== fingerprint(query)) throw errors.badRequest('cursor: belongs to a listing with other filters, sort or order; start again without it')
  const timestamp = query.sort === 'created_at' || query.sort === 'last_login_at'
  const keyOk = key === null
    ? query.sort === 'last_login_at'
    : typeof key === 'string' && key.length <= 1024 && (!timestamp || isTimestampText(key))
  if (!keyOk) throw invalid()
  return { key: key as string | null, id: id as number }
}
