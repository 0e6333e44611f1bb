import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import { TEST_JWT_SECRET } from './helpers.js'

// Helpers for tests that drive the real server as a child process (start, signal, kill, restart)
// and for fault tests that put a TCP proxy between the app and PostgreSQL.

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url))
const SERVER = fileURLToPath(new URL('../src/server.ts', import.meta.url))
const TSX = import.meta.resolve('tsx')

export interface ServerProcess {
  child: ChildProcess
  port: number
  url: string
  /** Every JSON log line so far (stdout); other output is kept as { raw }. */
  logs: () => any[]
  /** stderr so far (startup failures, config errors). */
  stderr: () => string
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Resolves with the first log line (past or future) matching, or rejects after timeoutMs. */
  waitForLog: (predicate: (line: any) => boolean, timeoutMs?: number) => Promise<any>
}

export interface StartOptions {
  /** Working directory: a temp dir, so no developer .env in the repo is loaded. */
  cwd: string
  /** Resolve without waiting for "Server listening" (e.g. a start expected to fail). */
  noWait?: boolean
  /** Run `npm start` in the repository (build, then the built server) instead of the sources via tsx. */
  npmStart?: boolean
  startTimeoutMs?: number
}

type After = { after: (fn: () => Promise<void> | void) => void }

/**
 * Starts `node --import tsx src/server.ts` with only the given environment (plus PATH), on a
 * free port (PORT=0) unless one is given; killed (with its cluster workers) when the test ends.
 */
export async function startServer (t: After, env: Record<string, string>, options: StartOptions): Promise<ServerProcess> {
  const [command, args] = options.npmStart ? ['npm', ['start', '--silent']] : [process.execPath, ['--import', TSX, SERVER]]
  const child = spawn(command, args, {
    cwd: options.npmStart ? REPO_ROOT : options.cwd,
    env: {
      PATH: process.env.PATH,
      ...(options.npmStart ? { HOME: process.env.HOME } : {}),
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      JWT_SECRET: TEST_JWT_SECRET,
      ...env
    },
    // Its own process group, so cleanup can kill cluster workers too.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }))
  })
  const lines: any[] = []
  const waiters = new Set<{ predicate: (line: any) => boolean, resolve: (line: any) => void }>()
  let buffered = ''
  let errors = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk
    const complete = buffered.split('\n')
    buffered = complete.pop()!
    for (const text of complete) {
      if (text.trim() === '') continue
      let line: any
      try {
        line = JSON.parse(text)
      } catch {
        line = { raw: text }
      }
      lines.push(line)
      for (const waiter of waiters) {
        if (waiter.predicate(line)) {
          waiters.delete(waiter)
          waiter.resolve(line)
        }
      }
    }
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { errors += chunk })

  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // Already gone.
      }
      await exited
    }
  })

  // Generous: these wait for something that happens in a second or two, but CI shares two cores
  // with a whole test run, and a timeout here only decides how late a real failure is reported.
  const waitForLog = (predicate: (line: any) => boolean, timeoutMs = 30_000) => {
    const found = lines.find(predicate)
    if (found !== undefined) return Promise.resolve(found)
    return new Promise<any>((resolve, reject) => {
      const waiter = {
        predicate,
        resolve: (line: any) => {
          clearTimeout(timer)
          resolve(line)
        }
      }
      const timer = setTimeout(() => {
        waiters.delete(waiter)
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${errors}; stdout: ${JSON.stringify(lines.slice(-10))}`))
      }, timeoutMs)
      waiters.add(waiter)
      exited.then(({ code, signal }) => {
        if (!waiters.has(waiter)) return
        waiters.delete(waiter)
        clearTimeout(timer)
        reject(new Error(`server exited (${code ?? signal}) before the expected log line; stderr: ${errors}; stdout: ${JSON.stringify(lines.slice(-10))}`))
      })
    })
  }

  let port = 0
  if (!options.noWait) {
    const listening = await waitForLog((line) => typeof line.msg === 'string' && line.msg.startsWith('Server listening at http://127.0.0.1:'), options.startTimeoutMs ?? 60_000)
    port = Number(/:(\d+)$/.exec(listening.msg)![1])
  }
  return { child, port, url: `http://127.0.0.1:${port}`, logs: () => lines, stderr: () => errors, exited, waitForLog }
}

export interface HttpResult {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
  json: () => any
}

/** One request on its own connection (no keep-alive pool that could hold the server open). */
export function request (url: string, options: { method?: string, body?: unknown, headers?: Record<string, string>, timeoutMs?: number } = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
    const req = http.request(url, {
      method: options.method ?? 'GET',
      agent: false,
      headers: { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      timeout: options.timeoutMs ?? 10_000
    }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, json: () => JSON.parse(body) }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Sends SIGTERM; resolves with the exit code and how many ms after the signal the process exited. */
export async function terminate (server: ServerProcess): Promise<{ code: number | null, tookMs: number }> {
  const signalledAt = Date.now()
  server.child.kill('SIGTERM')
  const { code } = await server.exited
  return { code, tookMs: Date.now() - signalledAt }
}

/** Opens a raw TCP connection to the server. */
export async function connect (port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  return socket
}

/** Everything the peer sends until it closes the connection, and when it closed it. */
export function readUntilClose (socket: net.Socket): Promise<{ data: string, closedAt: number }> {
  return new Promise((resolve) => {
    let data = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk) => { data += chunk })
    socket.on('error', () => {})
    socket.on('close', () => resolve({ data, closedAt: Date.now() }))
  })
}

export interface TcpProxy {
  port: number
  /** Forward connections to the target (again). */
  up: () => Promise<void>
  /** Drop every open connection and refuse new ones (the database is down). */
  refuse: () => Promise<void>
  /** Drop every open connection; accept new ones but never answer (a network partition). */
  blackhole: () => Promise<void>
  close: () => Promise<void>
}

/** A TCP proxy the test controls, to take a database "down" without touching the real one. */
export async function createTcpProxy (targetHost: string, targetPort: number): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>()
  let mode: 'up' | 'blackhole' = 'up'
  let port = 0
  const track = (socket: net.Socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  }
  const server = net.createServer((client) => {
    track(client)
    if (mode === 'blackhole') return
    const upstream = net.connect(targetPort, targetHost)
    track(upstream)
    client.pipe(upstream).pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  const dropAll = () => {
    for (const socket of sockets) socket.destroy()
  }
  const listen = async () => {
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
    port = (server.address() as net.AddressInfo).port
  }
  const stopListening = async () => {
    if (!server.listening) return
    const closed = new Promise((resolve) => server.close(resolve))
    dropAll()
    await closed
  }
  await listen()
  return {
    get port () {
      return port
    },
    up: async () => {
      mode = 'up'
      if (!server.listening) await listen()
    },
    refuse: async () => {
      await stopListening()
    },
    blackhole: async () => {
      mode = 'blackhole'
      dropAll()
      if (!server.listening) await listen()
    },
    close: async () => {
      await stopListening()
    }
  }
}
