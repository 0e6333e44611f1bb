import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { sql } from 'kysely'
import { insertUsers, listAll, listUsers, toQuery, type SeedUser } from './admin-helpers.js'
import { authed, buildTestApp, createClock, createUser, DIALECTS, json, login, signup, useSuiteApp } from './helpers.js'

// GET /admin/users through HTTP on both databases: who may call it, search (prefix and
// contains, case-insensitive, wildcards literal), filters, sorts, the keyset cursor (no repeat,
// no skip while users share a created_at and others sign up), total and the page agreeing,
// and the 400s and 500s that must never look like an empty directory.

const T0 = Date.parse('2026-03-01T12:00:00.000Z')
const at = (offsetMs: number) => new Date(T0 + offsetMs).toISOString()
const MINUTE = 60_000
const DAY = 86_400_000

const bytes = (text: string) => Buffer.from(text, 'utf8')
/** The directory's order: code points (UTF-8 bytes), nulls lowest, then the id. */
function expectedOrder (users: Array<Record<string, any>>, key: string, order: 'asc' | 'desc'): number[] {
  const value = (user: Record<string, any>) => key === 'email' ? user.email.toLowerCase() : key === 'username' ? user.username.normalize('NFKC').toLowerCase() : user[key]
  const sorted = [...users].sort((a, b) => {
    const [x, y] = [value(a), value(b)]
    const byKey = x === y ? 0 : x === null ? -1 : y === null ? 1 : Buffer.compare(bytes(x), bytes(y))
    return byKey !== 0 ? byKey : a.id - b.id
  })
  return (order === 'asc' ? sorted : sorted.reverse()).map((user) => user.id)
}

const ids = (users: Array<Record<string, any>>) => users.map((user) => user.id)

async function adminApp (t: Parameters<typeof buildTestApp>[0], dialect: 'sqlite' | 'postgres', env: Record<string, string> = {}) {
  const clock = createClock(T0 + 30 * DAY)
  const { app } = await buildTestApp(t, { dialect, env, overrides: { now: clock.now } })
  const admin = await createUser(app, { admin: true })
  return { app, admin, clock }
}

for (const dialect of DIALECTS) {
  describe(`admin user directory (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })

    it('answers 401 without a token and 403 to a non-admin, before looking at the query', async () => {
      const { app } = suite()
      const user = await createUser(app)
      const anonymous = await app.inject({ method: 'GET', url: '/admin/users' })
      assert.equal(anonymous.statusCode, 401)
      assert.equal(anonymous.headers['www-authenticate'], 'Bearer')
      for (const url of ['/admin/users', '/admin/users?bogus=1', '/admin/users?limit=0']) {
        const refused = await authed(app, user.token, { method: 'GET', url })
        assert.equal(refused.statusCode, 403, url)
        assert.deepEqual(json(refused), { detail: 'Administrators only' })
      }
    })

    it('refuses an unknown parameter, a bad value and a malformed cursor with 400 naming the problem', async () => {
      const { app } = suite()
      const admin = await createUser(app, { admin: true })
      const cases: Array<[string, RegExp]> = [
        ['bogus=1', /bogus/],
        ['sort=created', /sort/],
        ['order=up', /order/],
        ['limit=0', /limit/],
        ['limit=201', /limit/],
        ['role=root', /role/],
        ['status=banned', /status/],
        ['email_verified=maybe', /email_verified/],
        ['created_from=yesterday', /created_from/],
        ['created_from=2026-02-30', /created_from: must be an ISO 8601 date/],
        ['created_to=2026-13-01T00:00:00Z', /created_to/],
        ['match=fuzzy', /match/],
        ['cursor=not*base64', /cursor/],
        [`cursor=${Buffer.from('hello').toString('base64url')}`, /^cursor: is not a cursor returned by this endpoint$/],
        [`cursor=${Buffer.from('[1,2]').toString('base64url')}`, /^cursor: is not a cursor returned by this endpoint$/],
        ['role=user&role=admin', /role/]
      ]
      for (const [query, detail] of cases) {
        const response = await authed(app, admin.token, { method: 'GET', url: `/admin/users?${query}` })
        assert.equal(response.statusCode, 400, `${query}: ${response.body}`)
        assert.match(json(response).detail, detail, query)
      }
    })

    it('lists users newest first with the admin fields, their live sessions and an exact total', async (t) => {
      const { app, admin, clock } = await adminApp(t, dialect.name)
      const alice = await signup(app)
      await login(app, alice.email, alice.password)
      const second = await login(app, alice.email, alice.password)
      // An ended session does not count.
      await authed(app, second, { method: 'POST', url: '/users/logout' })
      const bob = await signup(app)
      const page = await listUsers(app, admin.token)
      assert.deepEqual(ids(page.users), [bob.id, alice.id, admin.id])
      assert.equal(page.total, 3)
      assert.equal(page.total_exact, true)
      assert.equal(page.next_cursor, null)
      const row = page.users.find((user) => user.id === alice.id)!
      assert.deepEqual(Object.keys(row).sort(), ['created_at', 'email', 'email_verified', 'id', 'last_login_at', 'role', 'sessions', 'status',
        'suspended_until', 'suspension_reason', 'updated_at', 'username'])
      assert.equal(row.username, alice.username)
      assert.equal(row.status, 'active')
      assert.equal(row.sessions, 1)
      assert.equal(row.last_login_at, new Date(clock.now()).toISOString())
      assert.equal(page.users.find((user) => user.id === bob.id)!.last_login_at, null)
      assert.equal(page.users.find((user) => user.id === bob.id)!.sessions, 0)
      assert.ok(!JSON.stringify(page).includes('argon2'), 'no password hash in the listing')
      // The unfiltered total follows deletions and signups at once.
      assert.equal((await authed(app, admin.token, { method: 'DELETE', url: `/users/${bob.id}` })).statusCode, 204)
      await signup(app)
      await signup(app)
      const after = await listUsers(app, admin.token)
      assert.deepEqual([after.total, after.total_exact, after.users.length], [4, true, 4])
    })

    it('q matches the start of the email or the username, ignoring case; match=contains finds it anywhere', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      const [alice, bob, carol, dave] = await insertUsers(app, [
        { username: 'Alice.Smith', email: 'alice.smith@Example.com' },
        { username: 'bobby', email: 'BOB.Jones@example.org' },
        { username: 'carol', email: 'c.alison@example.net' },
        { username: 'Ärger', email: 'aerger@example.com' }
      ])
      const search = async (q: string, match?: string) => ids((await listUsers(app, admin.token, { q, match, sort: 'username', order: 'asc' })).users)
      assert.deepEqual(await search('ALI'), [alice])
      assert.deepEqual(await search('bob.j'), [bob])
      assert.deepEqual(await search('BOBBY'), [bob])
      assert.deepEqual(await search('ärg'), [dave])
      assert.deepEqual(await search('ÄRG'), [dave])
      assert.deepEqual(await search('example'), [], 'not at the start of either')
      assert.deepEqual(await search('SMITH', 'contains'), [alice])
      assert.deepEqual(await search('ALIS', 'contains'), [carol])
      assert.deepEqual((await search('example.', 'contains')).sort((a, b) => a - b), [admin.id, alice, bob, carol, dave].sort((a, b) => a - b))
      assert.deepEqual(await search('  ali  '), [alice], 'surrounding spaces are ignored')
      const blank = await listUsers(app, admin.token, { q: '   ' })
      assert.equal(blank.total, 5, 'a blank q is no search')
    })

    it('treats %, _ and \\ in q as ordinary characters', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      const [sale, plain, under, slash] = await insertUsers(app, [
        { username: 'promo-a', email: '50%_off@example.com' },
        { username: 'promo-b', email: '50abc@example.com' },
        { username: 'x_y', email: 'xay@example.com' },
        { username: 'back\\slash', email: 'bs@example.com' }
      ])
      const search = async (q: string, match?: string) => ids((await listUsers(app, admin.token, { q, match })).users).sort((a, b) => a - b)
      assert.deepEqual(await search('50%_'), [sale])
      assert.deepEqual(await search('50%'), [sale])
      assert.deepEqual(await search('50'), [sale, plain])
      assert.deepEqual(await search('x_'), [under])
      assert.deepEqual(await search('%'), [])
      assert.deepEqual(await search('_', 'contains'), [sale, under])
      assert.deepEqual(await search('%_', 'contains'), [sale])
      assert.deepEqual(await search('k\\s', 'contains'), [slash])
      assert.deepEqual(await search('back\\'), [slash])
      assert.ok(plain > 0)
    })

    it('filters by role, status (an expired suspension is active), email verification and creation time, AND-ed', async (t) => {
      const { app, admin, clock } = await adminApp(t, dialect.name)
      const now = clock.now()
      const seeded: SeedUser[] = [
        { username: 'f-admin', email: 'f-admin@example.com', role: 'admin', created_at: at(-10 * DAY), email_verified_at: at(-9 * DAY) },
        { username: 'f-susp', email: 'f-susp@example.com', status: 'suspended', suspension_reason: 'spam', created_at: at(-5 * DAY) },
        { username: 'f-until', email: 'f-until@example.com', status: 'suspended', suspended_until: new Date(now + DAY).toISOString(), suspension_reason: 'cool down', created_at: at(0) },
        { username: 'f-expired', email: 'f-expired@example.com', status: 'suspended', suspended_until: new Date(now - 1000).toISOString(), suspension_reason: 'over', created_at: at(DAY), email_verified_at: at(DAY) },
        { username: 'f-plain', email: 'f-plain@example.com', created_at: at(2 * DAY) }
      ]
      const [fAdmin, fSusp, fUntil, fExpired, fPlain] = await insertUsers(app, seeded)
      const filtered = async (query: Record<string, string>) => {
        const page = await listUsers(app, admin.token, { q: 'f-', sort: 'created_at', order: 'asc', ...query })
        assert.equal(page.total, page.users.length, 'total agrees with the page')
        return ids(page.users)
      }
      assert.deepEqual(await filtered({ role: 'admin' }), [fAdmin])
      assert.deepEqual(await filtered({ role: 'user' }), [fSusp, fUntil, fExpired, fPlain])
      assert.deepEqual(await filtered({ status: 'suspended' }), [fSusp, fUntil])
      assert.deepEqual(await filtered({ status: 'active' }), [fAdmin, fExpired, fPlain])
      assert.deepEqual(await filtered({ email_verified: 'true' }), [fAdmin, fExpired])
      assert.deepEqual(await filtered({ email_verified: 'false' }), [fSusp, fUntil, fPlain])
      assert.deepEqual(await filtered({ created_from: at(0) }), [fUntil, fExpired, fPlain], 'inclusive')
      assert.deepEqual(await filtered({ created_to: at(DAY) }), [fAdmin, fSusp, fUntil, fExpired], 'inclusive to the millisecond')
      assert.deepEqual(await filtered({ created_to: at(DAY - 1) }), [fAdmin, fSusp, fUntil])
      // A date alone is a whole UTC day.
      assert.deepEqual(await filtered({ created_from: at(DAY).slice(0, 10), created_to: at(DAY).slice(0, 10) }), [fExpired])
      assert.deepEqual(await filtered({ created_from: '2026-03-01T13:00:00+01:00' }), [fUntil, fExpired, fPlain], 'an offset is honoured')
      assert.deepEqual(await filtered({ role: 'user', status: 'active', email_verified: 'true' }), [fExpired])
      assert.deepEqual(await filtered({ role: 'admin', status: 'suspended' }), [])
      // Shown as the suspension stands now: the expired one is over.
      const page = await listUsers(app, admin.token, { q: 'f-', sort: 'created_at', order: 'asc' })
      const byId = new Map(page.users.map((user) => [user.id, user]))
      assert.deepEqual([byId.get(fUntil)!.status, byId.get(fUntil)!.suspension_reason, byId.get(fUntil)!.suspended_until], ['suspended', 'cool down', new Date(now + DAY).toISOString()])
      assert.deepEqual([byId.get(fSusp)!.status, byId.get(fSusp)!.suspended_until], ['suspended', null])
      assert.deepEqual([byId.get(fExpired)!.status, byId.get(fExpired)!.suspension_reason, byId.get(fExpired)!.suspended_until], ['active', null, null])
      // When the clock passes f-until's end, it is active too, with no job having run.
      clock.advance(DAY + 1000)
      admin.token = await login(app, admin.email, admin.password)
      assert.deepEqual(await filtered({ status: 'suspended' }), [fSusp])
    })

    it('sorts by each key in both orders (code points; never-logged-in users lowest) across pages', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      const seeded: SeedUser[] = []
      for (let i = 0; i < 40; i++) {
        seeded.push({
          username: ['zoë', 'Zed', 'émile', 'adam', 'Ådne', 'b_rt'][i % 6] + i,
          email: `${['m', 'A', 'é', 'z', 'b'][i % 5]}${i}@example.com`,
          created_at: at((i % 7) * MINUTE),
          last_login_at: i % 3 === 0 ? null : at((i % 11) * MINUTE)
        })
      }
      await insertUsers(app, seeded)
      const everyone = (await listAll(app, admin.token, { limit: 200 })).users
      assert.equal(everyone.length, 41)
      for (const sort of ['created_at', 'email', 'username', 'last_login_at']) {
        for (const order of ['asc', 'desc'] as const) {
          const served = await listAll(app, admin.token, { sort, order, limit: 6 })
          assert.deepEqual(ids(served.users), expectedOrder(everyone, sort, order), `${sort} ${order}`)
          assert.ok(served.totals.every((total) => total === 41))
        }
      }
    })

    it('pages through users sharing one created_at while others sign up: nobody repeated, nobody skipped', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      const same = at(0)
      // 150 users created at the same millisecond (an import), 90 spread around it; the "batch"
      // prefix matches many (the walk along the index), "few" only 9 (read by id and sorted).
      const seeded: SeedUser[] = []
      for (let i = 0; i < 240; i++) {
        const tie = i < 150
        const tag = i % 27 === 0 ? 'few' : 'batch'
        seeded.push({ username: `${tag}-${i}`, email: `${tag}-${i}@example.com`, created_at: tie ? same : at((i - 195) * MINUTE) })
      }
      const before = await insertUsers(app, seeded)
      let added = 0
      const others = async () => {
        // New users meanwhile: some at the very same created_at, some newer, some older.
        added++
        await insertUsers(app, [
          { username: `batch-new-${added}a`, email: `batch-new-${added}a@example.com`, created_at: same },
          { username: `batch-new-${added}b`, email: `batch-new-${added}b@example.com`, created_at: at(DAY + added) },
          { username: `few-new-${added}`, email: `few-new-${added}@example.com`, created_at: at(-DAY - added) }
        ])
        await signup(app)
      }
      for (const query of [
        { sort: 'created_at', order: 'desc', limit: 7 },
        { sort: 'created_at', order: 'asc', limit: 7 },
        { sort: 'created_at', order: 'desc', limit: 7, q: 'batch' },
        { sort: 'created_at', order: 'asc', limit: 3, q: 'few' },
        { sort: 'last_login_at', order: 'desc', limit: 11, q: 'batch' },
        { sort: 'email', order: 'asc', limit: 13 }
      ] as const) {
        const served = ids((await listAll(app, admin.token, query, others)).users)
        assert.equal(new Set(served).size, served.length, `no repeats: ${JSON.stringify(query)}`)
        const prefix = ('q' in query ? query.q : undefined) ?? ''
        const wanted = before.filter((_id, i) => seeded[i].username.startsWith(prefix))
        const missing = wanted.filter((id) => !served.includes(id))
        assert.deepEqual(missing, [], `no skips: ${JSON.stringify(query)}`)
      }
    })

    it('total agrees with the pages for every filter, and is capped at 10,000 (total_exact false)', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      const seeded: SeedUser[] = []
      for (let i = 0; i < 10_050; i++) {
        seeded.push({
          username: `${i % 2 ? 'odd' : 'even'}-${i}`,
          email: `u${i}@example.com`,
          role: i % 1000 === 0 ? 'admin' : 'user',
          created_at: at(Math.floor(i / 10) * 1000),
          email_verified_at: i % 3 === 0 ? at(0) : null
        })
      }
      await insertUsers(app, seeded)
      for (const query of [{ role: 'admin' }, { q: 'odd-1', email_verified: 'true' }, { q: 'even-99' }, { q: 'u100', match: 'contains' }]) {
        const all = await listAll(app, admin.token, { ...query, limit: 200 })
        assert.ok(all.users.length > 0)
        assert.ok(all.totals.every((total) => total === all.users.length), `${JSON.stringify(query)}: totals ${all.totals} vs ${all.users.length} listed`)
      }
      const wide = await listUsers(app, admin.token, { q: 'u' })
      assert.deepEqual([wide.total, wide.total_exact, wide.users.length], [10_000, false, 50])
      const odd = await listUsers(app, admin.token, { q: 'odd' })
      assert.deepEqual([odd.total, odd.total_exact], [5025, true])
      const everyone = await listUsers(app, admin.token)
      // No filter: SQLite counts exactly; PostgreSQL counts while the catalog knows no better.
      assert.deepEqual([everyone.total, everyone.total_exact], [10_051, true])
      if (dialect.name === 'postgres') {
        await sql`analyze users`.execute(app.db.kysely)
        const estimated = await listUsers(app, admin.token)
        assert.equal(estimated.total_exact, false, 'a large table: the estimate from the catalog')
        assert.ok(Math.abs(estimated.total - 10_051) < 500, `estimate ${estimated.total}`)
      }
    })

    it('a cursor continues only the listing it came from', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      await insertUsers(app, Array.from({ length: 5 }, (_, i) => ({ username: `c-${i}`, email: `c-${i}@example.com`, created_at: at(i) })))
      const first = await listUsers(app, admin.token, { q: 'c-', limit: 2 })
      assert.ok(first.next_cursor)
      const next = await listUsers(app, admin.token, { q: 'c-', limit: 3, cursor: first.next_cursor! })
      assert.equal(next.users.length, 3, 'the limit may change between pages')
      const others: Array<Record<string, string>> = [{ q: 'c-', order: 'asc' }, { q: 'c-', sort: 'email' }, { q: 'c-0' }, {}, { q: 'c-', role: 'user' }]
      for (const other of others) {
        const response = await authed(app, admin.token, { method: 'GET', url: '/admin/users', query: toQuery({ ...other, cursor: first.next_cursor! }) })
        assert.equal(response.statusCode, 400, JSON.stringify(other))
        assert.match(json(response).detail, /^cursor: belongs to a listing with other filters, sort or order/)
      }
      // A cursor whose position was tampered with (not a timestamp for created_at) is refused too.
      const [, id, print] = JSON.parse(Buffer.from(first.next_cursor!, 'base64url').toString())
      for (const key of ['2026-02-30T00:00:00.000Z', 'garbage', null, 42]) {
        const forged = Buffer.from(JSON.stringify([key, id, print])).toString('base64url')
        const response = await authed(app, admin.token, { method: 'GET', url: '/admin/users', query: { q: 'c-', limit: '2', cursor: forged } })
        assert.equal(response.statusCode, 400, String(key))
      }
    })

    it('a database error is a 500, never an empty directory', async (t) => {
      const { app, admin } = await adminApp(t, dialect.name)
      await signup(app)
      await sql`alter table users rename column last_login_at to last_login_gone`.execute(app.db.kysely)
      const queries: Array<Record<string, string>> = [{}, { q: 'a' }, { role: 'admin' }]
      for (const query of queries) {
        const response = await authed(app, admin.token, { method: 'GET', url: '/admin/users', query })
        assert.equal(response.statusCode, 500, response.body)
        assert.deepEqual(json(response), { detail: 'Internal Server Error' })
      }
    })
  })
}
