import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import SQLite from 'better-sqlite3'
import pg from 'pg'
import { LATEST_MIGRATION } from '../src/db/migrate.js'
import { createTestDatabase, DIALECTS, newUserData, type DialectName } from './helpers.js'
import { connect, readUntilClose, request, startServer, terminate } from './server-process.js'

// The real server as a child process: first start, restart, signals, cluster workers.

function tempDir (t: TestContext, prefix = 'uma-proc-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A data dir and, for PostgreSQL, a fresh database; the env that points a server at them. */
async function environment (t: TestContext, dialect: DialectName) {
  const dataDir = tempDir(t)
  const env: Record<string, string> = { DATA_DIR: dataDir }
  if (dialect === 'postgres') {
    const database = await createTestDatabase('postgres')
    t.after(() => database.drop())
    env.DATABASE_URL = database.url
  }
  return { dataDir, env, sqliteFile: join(dataDir, 'users.db') }
}

async function signupAndLogin (url: string) {
  const user = newUserData('proc')
  const created = await request(`${url}/users/signup`, { method: 'POST', body: user })
  assert.equal(created.status, 201, created.body)
  const login = await request(`${url}/users/login`, { method: 'POST', body: { email: user.email, password: user.password } })
  assert.equal(login.status, 200, login.body)
  return { ...user, id: created.json().user_id as number, token: login.json().access_token as string }
}

/** Resolves true when a new TCP connection to the port is refused. */
async function refused (port: number): Promise<boolean> {
  try {
    const socket = await connect(port)
    socket.destroy()
    return false
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ECONNREFUSED'
  }
}

for (const dialect of DIALECTS) {
  describe(`server process (${dialect.name})`, { skip: dialect.skip }, () => {
    it('creates the database and an owner-only jwt-secret on first start, serves /docs, and reuses both after a restart', async (t) => {
      const { dataDir, env, sqliteFile } = await environment(t, dialect.name)
      const secretFile = join(dataDir, 'jwt-secret')
      const cwd = tempDir(t)
      const first = await startServer(t, { ...env, JWT_SECRET: '' }, { cwd })
      assert.equal(statSync(secretFile).mode & 0o777, 0o600)
      const secret = readFileSync(secretFile, 'utf8')
      if (dialect.name === 'sqlite') assert.ok(existsSync(sqliteFile))
      assert.ok(first.logs().some((line) => /generated a 256-bit secret/.test(line.msg)))
      const docs = await request(`${first.url}/docs`)
      assert.ok(docs.status === 200 || (docs.status >= 300 && docs.status < 400), `GET /docs: ${docs.status}`)
      const openapi = await request(`${first.url}/openapi.json`)
      assert.equal(openapi.status, 200)
      assert.equal(openapi.json().info.title, 'User Management API')
      const user = await signupAndLogin(first.url)
      first.child.kill('SIGTERM')
      assert.deepEqual(await first.exited, { code: 0, signal: null })

      const second = await startServer(t, { ...env, JWT_SECRET: '' }, { cwd })
      assert.equal(readFileSync(secretFile, 'utf8'), secret)
      assert.ok(!second.logs().some((line) => /generated a 256-bit secret/.test(line.msg)))
      const me = await request(`${second.url}/users/me`, { headers: { authorization: `Bearer ${user.token}` } })
      assert.equal(me.status, 200, 'a token from the first run still works')
      assert.equal(me.json().email, user.email)
      second.child.kill('SIGTERM')
      assert.equal((await second.exited).code, 0)
    })

    it('on SIGTERM turns readiness to 503, stops accepting, finishes the in-flight request, closes the database and exits 0', async (t) => {
      const { env, sqliteFile } = await environment(t, dialect.name)
      const server = await startServer(t, { ...env, SHUTDOWN_DELAY: '1' }, { cwd: tempDir(t) })
      const user = newUserData('inflight')
      assert.equal((await request(`${server.url}/users/signup`, { method: 'POST', body: user })).status, 201)

      // A login whose body is only half sent when the signal arrives.
      const body = JSON.stringify({ email: user.email, password: user.password })
      const socket = await connect(server.port)
      const answer = readUntilClose(socket)
      socket.write(`POST /users/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n`)
      socket.write(body.slice(0, 10))
      await sleep(100)
      const signalledAt = Date.now()
      server.child.kill('SIGTERM')
      await server.waitForLog((line) => /shutting down/.test(line.msg))

      // First readiness fails while everything else is still served (SHUTDOWN_DELAY=1).
      const ready = await request(`${server.url}/health/ready`)
      assert.equal(ready.status, 503)
      assert.deepEqual(ready.json(), { detail: 'Shutting down' })
      assert.equal((await request(`${server.url}/health/live`)).status, 200)

      // Then new connections are refused, while the in-flight request keeps the process alive.
      let isRefused = false
      while (!isRefused && Date.now() - signalledAt < 5000) {
        isRefused = await refused(server.port)
        if (!isRefused) await sleep(100)
      }
      assert.ok(isRefused, 'new connections are refused after the delay')
      assert.equal(server.child.exitCode, null, 'still running for the in-flight request')

      socket.write(body.slice(10))
      const { data } = await answer
      assert.match(data, /^HTTP\/1\.1 200 /)
      assert.match(data, /"access_token":"/)
      assert.deepEqual(await server.exited, { code: 0, signal: null })
      assert.ok(server.logs().some((line) => line.msg === 'shut down cleanly'))

      // The in-flight login's session was committed, and SQLite's WAL was checkpointed into the file.
      if (dialect.name === 'sqlite') {
        assert.ok(!existsSync(`${sqliteFile}-wal`) || statSync(`${sqliteFile}-wal`).size === 0, 'WAL is empty')
        const db = new SQLite(sqliteFile, { readonly: true })
        const sessions = db.prepare('select count(*) as n from sessions').get() as { n: number }
        db.close()
        assert.equal(sessions.n, 1)
      } else {
        const client = new pg.Client({ connectionString: env.DATABASE_URL })
        await client.connect()
        const sessions = await client.query('select count(*)::int as n from sessions').finally(() => client.end())
        assert.equal(sessions.rows[0].n, 1)
      }
    })
  })
}

describe('npm start', () => {
  it('builds, then runs the server as the one process a signal sent to npm reaches', async (t) => {
    const dataDir = tempDir(t)
    const server = await startServer(t, { DATA_DIR: dataDir }, { cwd: dataDir, npmStart: true, startTimeoutMs: 90_000 })
    assert.equal((await request(`${server.url}/health/ready`)).status, 200)
    // The built pages: their scripts copied to dist/, the WebAuthn browser library read from node_modules.
    for (const path of ['/account/sign-in', '/account/assets/sign-in.js', '/account/assets/webauthn/index.js', '/account/assets/webauthn/methods/startAuthentication.js']) {
      assert.equal((await request(`${server.url}${path}`)).status, 200, path)
    }
    assert.equal((await request(`${server.url}/users/login/passkey/options`, { method: 'POST' })).status, 200)
    // The build bundled the admin console into dist/, and the built server serves that bundle.
    const consolePage = await request(`${server.url}/admin`)
    assert.equal(consolePage.status, 200)
    assert.match(consolePage.body, /src="admin\/assets\/console\.js"/)
    const bundle = await request(`${server.url}/admin/assets/console.js`)
    assert.equal(bundle.status, 200)
    assert.equal(bundle.body, readFileSync(new URL('../dist/admin-console/console.js', import.meta.url), 'utf8'))
    server.child.kill('SIGTERM')
    assert.deepEqual(await server.exited, { code: 0, signal: null })
    assert.ok(server.logs().some((line) => line.msg === 'shut down cleanly'), 'the server itself shut down, not only npm')
  })
})

/** The nice value of each thread of a process, by thread id (Linux /proc). */
function threadNiceValues (pid: number): Map<number, number> {
  const values = new Map<number, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    // Fields after "(comm) ": state is field 3, nice field 19.
    values.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]))
  }
  return values
}

describe('server process thread priority', { skip: process.platform !== 'linux' && 'thread priorities are set on Linux only' }, () => {
  it('runs every thread but the event loop at HELPER_THREAD_NICE (10 by default), so hashing yields to requests', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t) }, { cwd: tempDir(t) })
    const line = await server.waitForLog((entry) => entry.nice !== undefined)
    assert.equal(line.nice, 10)
    const pid = server.child.pid!
    const nice = threadNiceValues(pid)
    assert.equal(nice.get(pid), 0, 'the event loop keeps its priority')
    const helpers = [...nice].filter(([tid]) => tid !== pid)
    assert.ok(helpers.length >= 4, `libuv's pool alone has 4 threads; found ${helpers.length}`)
    assert.deepEqual(helpers.filter(([, value]) => value !== 10), [], 'every other thread runs at nice 10')
    assert.equal(line.threads, helpers.length)
  })

  it('HELPER_THREAD_NICE=0 leaves every thread as it was', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t), HELPER_THREAD_NICE: '0' }, { cwd: tempDir(t) })
    assert.equal((await request(`${server.url}/health/ready`)).status, 200)
    assert.deepEqual([...threadNiceValues(server.child.pid!).values()].filter((value) => value !== 0), [])
    assert.ok(!server.logs().some((entry) => entry.nice !== undefined))
  })
})

describe('server process shutdown limits', () => {
  it('exits 0 on SIGINT too', async (t) => {
    const dataDir = tempDir(t)
    const server = await startServer(t, { DATA_DIR: dataDir }, { cwd: tempDir(t) })
    server.child.kill('SIGINT')
    assert.deepEqual(await server.exited, { code: 0, signal: null })
  })

  it('cuts a request still running after SHUTDOWN_GRACE and exits', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t), SHUTDOWN_GRACE: '1' }, { cwd: tempDir(t) })
    const socket = await connect(server.port)
    const closed = readUntilClose(socket)
    // A body that never completes.
    socket.write('POST /users/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"em')
    await sleep(100)
    const { code, tookMs } = await terminate(server)
    assert.equal(code, 0)
    assert.ok(tookMs >= 900 && tookMs < 4000, `exited ${tookMs} ms after the signal`)
    await closed
    assert.ok(server.logs().some((line) => /grace period over/.test(line.msg)))
  })
})

describe('WORKERS (node:cluster)', () => {
  it('serves from several workers on one SQLite file, aggregates metrics, replaces a dead worker and stops cleanly', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t), WORKERS: '2', RATE_LIMITS: 'off' }, { cwd: tempDir(t) })
    const isListening = (line: any) => typeof line.msg === 'string' && line.msg.startsWith('Server listening')
    await server.waitForLog((line) => isListening(line) && server.logs().filter(isListening).length >= 2)
    const workerPids = () => [...new Set(server.logs().filter(isListening).map((line) => line.pid as number))]
    assert.equal(workerPids().length, 2)

    // Both workers write the same file (WAL); every signup lands.
    const signups = await Promise.all(Array.from({ length: 6 }, () => request(`${server.url}/users/signup`, { method: 'POST', body: newUserData('worker') })))
    assert.deepEqual(signups.map((response) => response.status), Array(6).fill(201))
    for (let i = 0; i < 20; i++) assert.equal((await request(`${server.url}/health/live`)).status, 200)

    // Whichever worker answers /metrics, the counts are the whole cluster's.
    const metrics = await request(`${server.url}/metrics`)
    assert.equal(metrics.status, 200)
    const live = metrics.body.split('\n').find((line) => line.startsWith('http_requests_total{') && line.includes('route="/health/live"'))
    assert.equal(Number(live?.split(' ').at(-1)), 20, live)

    const [victim] = workerPids()
    process.kill(victim, 'SIGKILL')
    await server.waitForLog((line) => line.msg === 'worker died unexpectedly; starting a replacement' && line.workerPid === victim)
    await server.waitForLog(() => workerPids().length === 3 && server.logs().filter(isListening).length >= 3)
    for (let i = 0; i < 4; i++) assert.equal((await request(`${server.url}/health/ready`)).status, 200)

    server.child.kill('SIGTERM')
    assert.deepEqual(await server.exited, { code: 0, signal: null })
    assert.ok(server.logs().some((line) => line.msg === 'all workers stopped'))
    for (const pid of workerPids()) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`)
  })
})

for (const dialect of DIALECTS) {
  describe(`instances starting at once (${dialect.name})`, { skip: dialect.skip }, () => {
    it('two instances starting together on a fresh database both start and migrate it once', async (t) => {
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      const env = { DATABASE_URL: database.url }
      const [a, b] = await Promise.all([
        startServer(t, { ...env, DATA_DIR: tempDir(t) }, { cwd: tempDir(t) }),
        startServer(t, { ...env, DATA_DIR: tempDir(t) }, { cwd: tempDir(t) })
      ])
      for (const server of [a, b]) assert.equal((await request(`${server.url}/health/ready`)).status, 200)
      const user = await signupAndLogin(a.url)
      const me = await request(`${b.url}/users/me`, { headers: { authorization: `Bearer ${user.token}` } })
      assert.equal(me.status, 200)

      let names: string[]
      if (dialect.name === 'sqlite') {
        const db = new SQLite(database.url.replace(/^sqlite:\/\//, ''), { readonly: true })
        names = db.prepare('select name from kysely_migration order by name').all().map((row: any) => row.name)
        db.close()
      } else {
        const client = new pg.Client({ connectionString: database.url })
        await client.connect()
        names = (await client.query('select name from kysely_migration order by name')).rows.map((row) => row.name)
        await client.end()
      }
      assert.deepEqual(names, [...new Set(names)], 'each migration recorded once')
      assert.equal(names[0], '001-initial')
      assert.ok(names.includes(LATEST_MIGRATION))
      for (const server of [a, b]) server.child.kill('SIGTERM')
      for (const server of [a, b]) assert.equal((await server.exited).code, 0)
    })
  })
}
