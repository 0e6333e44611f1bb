import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Compilable } from 'kysely'
import pg from 'pg'
import { candidatesQuery, cappedCountQuery, pageByIdsQuery, segmentsAfter, walkSegmentQuery, type DirectoryFilter, type DirectoryQuery, type SortKey } from '../src/admin/directory.queries.js'
import { insertUsers, listUsers, type SeedUser } from './admin-helpers.js'
import { buildTestApp, createTestDatabase, createUser, DIALECTS, useSuiteApp } from './helpers.js'

// The directory's query plans, read with EXPLAIN on both databases over 30,000 users (so that
// PostgreSQL's planner prefers an index where one fits): a prefix search and every cursor page
// use an index and never sort the table. A plan check, not a timed test: npm run bench times them
// at a million users (bench/scenarios/admin-directory.ts).

const USERS = 30_000
const FIRST = ['james', 'mary', 'robert', 'patricia', 'john', 'jennifer', 'michael', 'linda', 'david', 'elizabeth', 'william', 'barbara', 'richard', 'susan', 'joseph', 'jessica', 'thomas', 'sarah', 'charles', 'karen']
const LAST = ['smith', 'johnson', 'williams', 'brown', 'jones', 'garcia', 'miller', 'davis', 'rodriguez', 'martinez', 'hernandez', 'lopez', 'gonzalez', 'wilson', 'anderson', 'thomas', 'taylor', 'moore', 'jackson', 'martin']

function seedUsers (): SeedUser[] {
  const start = Date.parse('2024-01-01T00:00:00Z')
  return Array.from({ length: USERS }, (_, i) => {
    const first = FIRST[(i * 7) % FIRST.length]
    const last = LAST[(i * 13 + Math.floor(i / 20)) % LAST.length]
    // 2,000 users share one created_at (an import); the rest are a minute apart.
    const created = new Date(start + (i < 2000 ? 0 : i * 60_000)).toISOString()
    return {
      username: `${first}.${last}${i}`,
      email: `${first[0]}${last}${i}@example.com`,
      created_at: created,
      updated_at: created,
      role: i % 5000 === 1 ? 'admin' : 'user',
      email_verified_at: i % 4 === 0 ? null : created,
      last_login_at: i % 3 === 0 ? null : new Date(start + i * 30_000).toISOString()
    }
  })
}

interface Plan {
  text: string
  /** PostgreSQL: every node type and the index it reads. */
  nodes: string[]
}

async function explain (app: FastifyInstance, query: Compilable, options: { noSeqScan?: boolean } = {}): Promise<Plan> {
  const { sql, parameters } = query.compile()
  if (app.db.dialect === 'sqlite') {
    const rows = app.db.sqlite!.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...parameters as unknown[]) as Array<{ detail: string }>
    const text = rows.map((row) => row.detail).join('\n')
    return { text, nodes: [] }
  }
  const client = await app.db.pool!.connect()
  let result: pg.QueryResult
  try {
    if (options.noSeqScan) await client.query('SET enable_seqscan = off')
    result = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, parameters as unknown[])
  } finally {
    if (options.noSeqScan) await client.query('RESET enable_seqscan')
    client.release()
  }
  const nodes: string[] = []
  const walk = (node: Record<string, any>) => {
    nodes.push(`${node['Node Type']}${node['Index Name'] ? ` on ${node['Index Name']}` : ''}`)
    for (const child of node.Plans ?? []) walk(child)
  }
  walk(result.rows[0]['QUERY PLAN'][0].Plan)
  return { text: JSON.stringify(result.rows[0]['QUERY PLAN']), nodes }
}

const NOW = '2026-06-01T00:00:00.000Z'

for (const dialect of DIALECTS) {
  describe(`admin directory query plans (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    before(async () => {
      const { app } = suite()
      await insertUsers(app, seedUsers())
      if (dialect.name === 'sqlite') app.db.sqlite!.exec('ANALYZE')
      else await app.db.pool!.query('ANALYZE users')
    })

    /** What counts the matches: SQLite reads their ids, PostgreSQL counts them. */
    const countQuery = (app: FastifyInstance, filter: DirectoryFilter) => dialect.name === 'sqlite'
      ? candidatesQuery(app.db.kysely, dialect.name, filter, NOW)
      : cappedCountQuery(app.db.kysely, dialect.name, filter, NOW)

    it('a prefix search reads the email and username indexes, not the table', async () => {
      const { app } = suite()
      const plan = await explain(app, countQuery(app, { q: { text: 'jam', match: 'prefix' } }))
      if (dialect.name === 'sqlite') {
        assert.match(plan.text, /SEARCH users USING (COVERING )?INDEX \S+ \(email_normalized>\? AND email_normalized<\?\)/, plan.text)
        assert.match(plan.text, /SEARCH users USING (COVERING )?INDEX \S+ \(username_normalized>\? AND username_normalized<\?\)/, plan.text)
        assert.doesNotMatch(plan.text, /SCAN users/, plan.text)
        // Few candidates are then read by primary key.
        const page = await explain(app, pageByIdsQuery(app.db.kysely, { filter: {}, sort: 'created_at', order: 'desc', limit: 50 }, [1, 2, 3], NOW))
        assert.match(page.text, /SEARCH users USING INTEGER PRIMARY KEY/, page.text)
      } else {
        assert.ok(plan.nodes.some((node) => /Index.* on users_email_sort_idx/.test(node)), plan.nodes.join(', '))
        assert.ok(plan.nodes.some((node) => /Index.* on users_username_sort_idx/.test(node)), plan.nodes.join(', '))
        assert.ok(!plan.nodes.includes('Seq Scan'), plan.nodes.join(', '))
        // A selective prefix's page: its few matches through the same indexes, then sorted.
        const query: DirectoryQuery = { filter: { q: { text: 'james.smith1', match: 'prefix' } }, sort: 'created_at', order: 'desc', limit: 50 }
        const page = await explain(app, walkSegmentQuery(app.db.kysely, dialect.name, query, segmentsAfter(dialect.name, 'created_at', 'desc', undefined)[0], 51, NOW))
        assert.ok(page.nodes.some((node) => /Index.* on users_(email|username)_sort_idx/.test(node)), page.nodes.join(', '))
        assert.ok(!page.nodes.includes('Seq Scan'), page.nodes.join(', '))
      }
    })

    it('every cursor page seeks the sort key\'s index in both orders, with no sort of the table', async () => {
      const { app } = suite()
      const cursors: Record<SortKey, string> = { created_at: '2024-01-01T00:00:00.000Z', email: 'jsmith100@example.com', username: 'john.smith100', last_login_at: '2024-01-05T00:00:00.000Z' }
      const indexes = dialect.name === 'sqlite'
        ? { created_at: 'users_created_at_idx', email: 'sqlite_autoindex_users_2', username: 'sqlite_autoindex_users_1', last_login_at: 'users_last_login_idx' }
        : { created_at: 'users_created_at_idx', email: 'users_email_sort_idx', username: 'users_username_sort_idx', last_login_at: 'users_last_login_idx' }
      for (const sort of Object.keys(cursors) as SortKey[]) {
        for (const order of ['desc', 'asc'] as const) {
          for (const key of sort === 'last_login_at' ? [cursors[sort], null] : [cursors[sort]]) {
            // Far from the end the walk goes to, so that most of the table lies beyond the cursor.
            const query: DirectoryQuery = { filter: {}, sort, order, limit: 50, after: { key, id: order === 'desc' ? USERS - 1000 : 1000 } }
            for (const segment of segmentsAfter(dialect.name, sort, order, query.after)) {
              const plan = await explain(app, walkSegmentQuery(app.db.kysely, dialect.name, query, segment, 51, NOW))
              const label = `${sort} ${order} after ${key}: ${dialect.name === 'sqlite' ? plan.text : plan.nodes.join(', ')}`
              // Within one run of equal keys the rows follow the id, so the primary key is an index that
              // fits too: the planners take it when they expect most of its rows to match.
              if (dialect.name === 'sqlite') {
                // email and username may be read from the narrow search index, which starts with the same column.
                const index = sort === 'email' ? `(${indexes.email}|users_search_idx)` : indexes[sort]
                assert.match(plan.text, new RegExp(`SEARCH users USING ((COVERING )?INDEX ${index} \\(|INTEGER PRIMARY KEY \\(rowid[<>]\\?\\))`), label)
                assert.doesNotMatch(plan.text, /TEMP B-TREE|SCAN users/, label)
              } else {
                assert.ok(plan.nodes.some((node) => node.startsWith('Index Scan') && (node.endsWith(` on ${indexes[sort]}`) || node.endsWith(' on users_pkey'))), label)
                assert.ok(!plan.nodes.some((node) => /Sort|Seq Scan/.test(node)), label)
              }
            }
          }
        }
      }
    })

    it('walking with a filter that matches most users follows the sort key\'s index, not the filter\'s', async () => {
      const { app } = suite()
      const query: DirectoryQuery = { filter: { role: 'user', emailVerified: true, q: { text: 'j', match: 'prefix' } }, sort: 'created_at', order: 'desc', limit: 50 }
      const [segment] = segmentsAfter(dialect.name, 'created_at', 'desc', undefined)
      const plan = await explain(app, walkSegmentQuery(app.db.kysely, dialect.name, query, segment, 51, NOW))
      if (dialect.name === 'sqlite') {
        assert.match(plan.text, /SCAN users USING INDEX users_created_at_idx/, plan.text)
        assert.doesNotMatch(plan.text, /TEMP B-TREE/, plan.text)
      } else {
        assert.ok(plan.nodes.some((node) => node === 'Index Scan on users_created_at_idx'), plan.nodes.join(', '))
        assert.ok(!plan.nodes.includes('Sort'), plan.nodes.join(', '))
      }
    })

    it('a rare filter (administrators) is found through its index', async () => {
      const { app } = suite()
      const plan = await explain(app, countQuery(app, { role: 'admin' }))
      if (dialect.name === 'sqlite') assert.match(plan.text, /SEARCH users USING COVERING INDEX users_role_idx \(role=\?\)/, plan.text)
      else assert.ok(plan.nodes.some((node) => /Index.* on users_role_idx/.test(node)), plan.nodes.join(', '))
    })

    it('match=contains can read the trigram indexes on PostgreSQL, and scans the narrow search index on SQLite', async () => {
      const { app } = suite()
      const query = countQuery(app, { q: { text: 'smith12', match: 'contains' } })
      if (dialect.name === 'sqlite') {
        const plan = await explain(app, query)
        assert.match(plan.text, /SCAN users USING COVERING INDEX users_search_idx/, plan.text)
      } else {
        // At 30,000 users a sequential scan is as cheap, and PostgreSQL rightly takes it; this
        // shows the indexes serve the query's LIKE ... ESCAPE (at a million users it picks them).
        const plan = await explain(app, query, { noSeqScan: true })
        assert.ok(plan.nodes.includes('Bitmap Index Scan on users_email_trgm_idx'), plan.nodes.join(', '))
        assert.ok(plan.nodes.includes('Bitmap Index Scan on users_username_trgm_idx'), plan.nodes.join(', '))
      }
    })
  })
}

describe('pg_trgm refused (postgres)', { skip: DIALECTS[1].skip }, () => {
  let url: string
  let role: string
  let drop: (() => Promise<void>) | undefined
  before(async () => {
    // A database whose owner is not us, and a role that may create tables in its schema but not
    // extensions (CREATE on the database): CREATE EXTENSION pg_trgm is refused.
    const database = await createTestDatabase('postgres')
    role = `uma_nocreate_${randomBytes(4).toString('hex')}`
    const admin = new pg.Client({ connectionString: database.url })
    await admin.connect()
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN`)
      await admin.query(`GRANT CREATE, USAGE ON SCHEMA public TO ${role}`)
    } finally {
      await admin.end()
    }
    const asRole = new URL(database.url)
    asRole.username = role
    url = asRole.toString()
    drop = database.drop
  })
  after(async () => {
    await drop?.()
    if (role !== undefined) {
      const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL })
      await client.connect()
      try {
        await client.query(`DROP ROLE IF EXISTS ${role}`)
      } finally {
        await client.end()
      }
    }
  })

  it('migrates without the trigram indexes and still finds users by substring', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'postgres', databaseUrl: url })
    const { rows: extensions } = await app.db.pool!.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
    assert.equal(extensions.length, 0, 'the extension was refused')
    const { rows: indexes } = await app.db.pool!.query("SELECT indexname FROM pg_indexes WHERE tablename = 'users' ORDER BY indexname")
    const names = indexes.map((row) => row.indexname)
    assert.ok(names.includes('users_email_sort_idx') && !names.some((name: string) => name.includes('trgm')), names.join(', '))
    const admin = await createUser(app, { admin: true })
    const [target] = await insertUsers(app, [{ username: 'needle-in-haystack', email: 'hay@example.com' }, { username: 'other', email: 'other@example.com' }])
    const page = await listUsers(app, admin.token, { q: 'IN-HAY', match: 'contains' })
    assert.deepEqual(page.users.map((user) => user.id), [target])
  })
})
