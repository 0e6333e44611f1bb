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
//   the count's query returns the matching ids (SQLite reads them in process, at no transfer
//   cost), and below walkThreshold those few rows are read by id and sorted; above it the walk
//   writes every filter column `+column` (a no-op that keeps SQLite off its index).

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

/** The filter as conditions, built once for the candidates and the page alike. */
function filterTerms (dialect: Dialect, filter: DirectoryFilter, now: string): FilterTerm[] {
  const terms: FilterTerm[] = []
  const text = (column: RawBuilder<unknown>) => dialect === 'postgres' ? sql`${column} collate "C"` : column
  if (filter.q !== undefined) {
    const email = normalizeEmail(filter.q.text)
    const username = normalizeUsername(filter.q.text).trim()
    if (filter.q.match === 'contains') {
      terms.push((eb, column) => eb.or([
        eb(column('email_normalized'), 'like', sql<string>`${`%${escapeLike(email)}%`} escape '\\'`),
        eb(column('username_normalized'), 'like', sql<string>`${`%${escapeLike(username)}%`} escape '\\'`)
      ]))
    } else {
      const range = (eb: Eb, column: RawBuilder<unknown>, prefix: string) => {
        const upper = prefixUpperBound(prefix)
        return eb.and([eb(text(column), '>=', prefix), ...(upper === undefined ? [] : [eb(text(column), '<', upper)])])
      }
      terms.push((eb, column) => eb.or([range(eb, column('email_normalized'), email), range(eb, column('username_normalized'), username)]))
    }
  }
  if (filter.role !== undefined) {
    const role = filter.role
    terms.push((eb, column) => eb(column('role'), '=', role))
  }
  if (filter.status === 'suspended') {
    terms.push((eb, column) => eb.and([eb(column('status'), '=', 'suspended'), eb.or([eb(column('suspended_until'), 'is', null), eb(column('suspended_until'), '>', now)])]))
  } else if (filter.status === 'active') {
    // Active rows never carry a suspended_until (unsuspending clears it); a suspension past it is over.
    terms.push((eb, column) => eb.or([eb(column('status'), '=', 'active'), eb(column('suspended_until'), '<=', now)]))
  }
  if (filter.emailVerified !== undefined) {
    const verified = filter.emailVerified
    terms.push((eb, column) => eb(column('email_verified_at'), verified ? 'is not' : 'is', null))
  }
  if (filter.createdFrom !== undefined) {
    const from = filter.createdFrom
    terms.push((eb, column) => eb(column('created_at'), '>=', from))
  }
  if (filter.createdBefore !== undefined) {
    const before = filter.createdBefore
    terms.push((eb, column) => eb(column('created_at'), '<', before))
  }
  return terms
}

const indexable = (name: FilterColumn) => sql.ref(`users.${name}`)

/**
 * The filter as one condition. `walk`: the page walks the sort key's index; SQLite then gets every
 * other column as `+column` so that it cannot pick that column's index instead.
 */
function filterCondition (dialect: Dialect, filter: DirectoryFilter, now: string, walk?: SortKey): Condition | undefined {
  const terms = filterTerms(dialect, filter, now)
  if (terms.length === 0) return undefined
  const column = walk === undefined || dialect !== 'sqlite'
    ? indexable
    : (name: FilterColumn) => name === SORT_COLUMNS[walk] ? indexable(name) : sql`+${sql.ref(`users.${name}`)}`
  return (eb) => eb.and(terms.map((term) => term(eb, column)))
}

export function hasFilter (filter: DirectoryFilter): boolean {
  return filter.q !== undefined || filter.role !== undefined || filter.status !== undefined ||
    filter.emailVerified !== undefined || filter.createdFrom !== undefined || filter.createdBefore !== undefined
}

/** SQLite: the ids of up to TOTAL_CAP + 1 matching users, in no order (their number is the total). */
export function candidatesQuery (db: Kysely<Database>, dialect: Dialect, filter: DirectoryFilter, now: string) {
  const condition = filterCondition(dialect, filter, now)
  let query = db.selectFrom('users').select('users.id').limit(TOTAL_CAP + 1)
  if (condition !== undefined) query = query.where(condition)
  return query
}

/** PostgreSQL: how many users match, counted up to TOTAL_CAP + 1. */
export function cappedCountQuery (db: Kysely<Database>, dialect: Dialect, filter: DirectoryFilter, now: string) {
  const condition = filterCondition(dialect, filter, now)
  let matching = db.selectFrom('users').select(sql<number>`1`.as('one')).limit(TOTAL_CAP + 1)
  if (condition !== undefined) matching = matching.where(condition)
  return db.selectFrom(matching.as('matching')).select((eb) => eb.fn.countAll<number>().as('n'))
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

/**
 * Every user: on SQLite the count its triggers keep (exact, one row), on PostgreSQL the catalog's
 * estimate once the table is large (counting a million rows there takes longer than the page).
 */
async function countAll (db: Kysely<Database>, dialect: Dialect): Promise<{ total: number, exact: boolean }> {
  if (dialect === 'sqlite') {
    const row = await db.selectFrom('users_count').select('n').executeTakeFirstOrThrow()
    return { total: Number(row.n), exact: true }
  }
  const { rows } = await sql<{ estimate: number }>`select reltuples::int8 as estimate from pg_class where oid = 'users'::regclass`.execute(db)
  const estimate = Number(rows[0]?.estimate ?? -1)
  if (estimate >= TOTAL_CAP) return { total: Math.round(estimate), exact: false }
  const row = await db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { total: Number(row.n), exact: true }
}

/** One page of the directory and its total, read from one snapshot of the database. */
export async function readDirectoryPage (db: Kysely<Database>, dialect: Dialect, query: DirectoryQuery, now: string): Promise<DirectoryPage> {
  const read = async (trx: Kysely<Database>): Promise<DirectoryPage> => {
    let rows: DirectoryRow[]
    let total: number
    let totalExact: boolean
    if (!hasFilter(query.filter)) {
      ({ total, exact: totalExact } = await countAll(trx, dialect))
      rows = await walk(trx, dialect, query, now)
    } else if (dialect === 'postgres') {
      const counted = Number((await cappedCountQuery(trx, dialect, query.filter, now).executeTakeFirstOrThrow()).n)
      total = Math.min(counted, TOTAL_CAP)
      totalExact = counted <= TOTAL_CAP
      rows = await walk(trx, dialect, query, now)
    } else {
      const ids = (await candidatesQuery(trx, dialect, query.filter, now).execute()).map((row) => row.id)
      total = Math.min(ids.length, TOTAL_CAP)
      totalExact = ids.length <= TOTAL_CAP
      const top = await trx.selectFrom('users').select((eb) => eb.fn.max('users.id').as('n')).executeTakeFirst()
      rows = ids.length <= walkThreshold(query.sort, query.limit, Number(top?.n ?? 0))
        ? (ids.length === 0 ? [] : await pageByIdsQuery(trx, query, ids, now).execute())
        : await walk(trx, dialect, query, now)
    }
    const more = rows.length > query.limit
    if (more) rows = rows.slice(0, query.limit)
    const last = rows.at(-1)
    return { rows, total, totalExact, next: more && last !== undefined ? { key: last.cursor_key, id: last.id } : undefined }
  }
  // Repeatable read: the count and the page see the same users, even while others sign up.
  return dialect === 'postgres'
    ? db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(read)
    : db.transaction().execute(read)
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
