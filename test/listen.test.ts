import assert from 'node:assert/strict'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { ConfigError, listenSockets, reusePortSupported } from '../src/config.js'
import { newUserData } from './helpers.js'
import { connect, readUntilClose, startServer, terminate, type ServerProcess } from './server-process.js'

// LISTEN_SOCKETS: several sockets bound to one port within the process (SO_REUSEPORT), so a burst
// of new connections is accepted several at a time (src/listen.ts says why).

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-listen-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** TCP sockets of the process listening on `port`, read from /proc (fd links and the socket table). */
function listeningSockets (pid: number, port: number): number {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match) inodes.add(match[1])
    } catch { /* closed meanwhile */ }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  return ['tcp', 'tcp6'].flatMap((table) => readFileSync(`/proc/${pid}/net/${table}`, 'utf8').split('\n').slice(1))
    .map((line) => line.trim().split(/\s+/))
    // local_address is ADDR:PORT, st 0A is LISTEN, the 10th column the inode.
    .filter((fields) => fields.length > 9 && fields[1].endsWith(`:${hexPort}`) && fields[3] === '0A' && inodes.has(fields[9]))
    .length
}

/** Opens `count` connections, each sending a signup (of its own user) whose body is only half written. */
async function halfSentSignups (server: ServerProcess, count: number) {
  const sockets = await Promise.all(Array.from({ length: count }, async () => {
    const body = JSON.stringify(newUserData('listen'))
    const socket = await connect(server.port)
    const answer = readUntilClose(socket)
    socket.write(`POST /users/signup HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n`)
    socket.write(body.slice(0, 10))
    return { finish: () => socket.write(body.slice(10)), answer }
  }))
  // Time for the server to accept them all and read their headers: a request that arrives once
  // shutdown has begun is answered 503 instead.
  await sleep(300)
  return sockets
}

describe('LISTEN_SOCKETS resolution', () => {
  it('knows which Node.js versions can share a port within one process', () => {
    for (const version of ['20.20.2', '22.11.0', '23.0.0']) assert.equal(reusePortSupported(version), false, version)
    for (const version of ['22.12.0', '22.23.5', '23.1.0', '24.0.0', '26.12.1']) assert.equal(reusePortSupported(version), true, version)
  })

  it('resolves auto (the default) to 8 where the port can be shared and WORKERS=1, else to 1', () => {
    assert.equal(listenSockets({}, 1, '24.22.3'), 8)
    assert.equal(listenSockets({ LISTEN_SOCKETS: ' Auto ' }, 1, '22.12.0'), 8)
    assert.equal(listenSockets({ LISTEN_SOCKETS: '' }, 1, '20.20.2'), 1)
    assert.equal(listenSockets({}, 4, '24.22.3'), 1, 'cluster workers share the port through their primary')
    assert.equal(listenSockets({ LISTEN_SOCKETS: '3' }, 1, '26.12.1'), 3)
    assert.equal(listenSockets({ LISTEN_SOCKETS: '1' }, 4, '20.20.2'), 1)
  })

  it('refuses a count it cannot honour, saying why', () => {
    const refused = (env: Record<string, string>, workers: number, version: string, reason: RegExp) => {
      assert.throws(() => listenSockets(env, workers, version), (error: unknown) => {
        assert.ok(error instanceof ConfigError, String(error))
        assert.match(error.message, /LISTEN_SOCKETS/)
        assert.match(error.message, reason)
        return true
      })
    }
    refused({ LISTEN_SOCKETS: '2' }, 1, '20.20.2', /Node\.js 22\.12 or newer \(this is 20\.20\.2\)/)
    refused({ LISTEN_SOCKETS: '2' }, 2, '24.22.3', /WORKERS=1/)
    refused({ LISTEN_SOCKETS: '0' }, 1, '24.22.3', /between 1 and 64/)
    refused({ LISTEN_SOCKETS: '65' }, 1, '24.22.3', /between 1 and 64/)
    refused({ LISTEN_SOCKETS: 'many' }, 1, '24.22.3', /whole number/)
  })
})

describe('server process with several listening sockets', { skip: !reusePortSupported() && `Node.js ${process.version} cannot share a port within one process (22.12 and newer can)` }, () => {
  it('binds them all to the port, serves on each, and on SIGTERM closes them all and finishes their requests', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t), LISTEN_SOCKETS: '4' }, { cwd: tempDir(t) })
    assert.equal(listeningSockets(server.child.pid!, server.port), 4)
    assert.equal((await server.waitForLog((line) => /several sockets/.test(line.msg))).sockets, 4)

    // The kernel spreads connections over the sockets by their ports: 12 all landing on the
    // app's own socket would be a 1 in 4^12 chance, so the extra servers serve some of them.
    const signups = await halfSentSignups(server, 12)
    const signalledAt = Date.now()
    server.child.kill('SIGTERM')
    let refused = false
    while (!refused && Date.now() - signalledAt < 5000) {
      try {
        (await connect(server.port)).destroy()
        await sleep(50)
      } catch (error) {
        refused = (error as NodeJS.ErrnoException).code === 'ECONNREFUSED'
      }
    }
    assert.ok(refused, 'every socket stopped accepting')
    assert.equal(server.child.exitCode, null, 'still running for the requests in flight')

    for (const signup of signups) signup.finish()
    for (const signup of signups) assert.match((await signup.answer).data, /^HTTP\/1\.1 201 [^]*"user_id":/)
    assert.deepEqual(await server.exited, { code: 0, signal: null })
    assert.ok(server.logs().some((line) => line.msg === 'shut down cleanly'))
  })

  it('cuts the requests still running on any socket when SHUTDOWN_GRACE is over', async (t) => {
    const server = await startServer(t, { DATA_DIR: tempDir(t), LISTEN_SOCKETS: '4', SHUTDOWN_GRACE: '1' }, { cwd: tempDir(t) })
    const signups = await halfSentSignups(server, 12)
    const { code, tookMs } = await terminate(server)
    assert.equal(code, 0)
    assert.ok(tookMs >= 900 && tookMs < 4000, `exited ${tookMs} ms after the signal`)
    for (const signup of signups) assert.equal((await signup.answer).data, '', 'cut without an answer')
    assert.ok(server.logs().some((line) => /grace period over/.test(line.msg)))
  })
})
