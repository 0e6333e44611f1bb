// Starting and stopping the processes the bench loads: our server (through package.json's start
// script, so the bench measures what `npm start` runs) and the comparison servers.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { openSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { sampleRss, type RssSampler } from './proc.js'

/** A running server the bench loads: where it answers, its process (for CPU and RSS) and how to stop it. */
export interface Target {
  url: string
  pid: number
  rss: RssSampler
  stop: () => Promise<void>
}

/** The repository's root folder. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function freePort (): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Waits until `url` answers (with a 2xx, or any status with `anyStatus`). */
export async function waitFor (url: string, options: { timeoutMs?: number, anyStatus?: boolean, exited?: () => boolean } = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (options.exited?.()) throw new Error(`the server for ${url} exited before it answered`)
    try {
      const response = await fetch(url)
      if (response.ok || options.anyStatus) return
    } catch { /* not up yet */ }
    await sleep(100)
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`)
}

/** SIGTERM, then SIGKILL after 30 s; resolves when the process has exited. */
export function stopChild (child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.once('exit', () => resolve())
    child.kill('SIGTERM')
    setTimeout(() => child.kill('SIGKILL'), 30_000).unref()
  })
}

/** Spawns a server, waits until `readyPath` answers and starts sampling its RSS. */
export async function startProcess (options: {
  command: string
  args: string[]
  env: Record<string, string | undefined>
  port: number
  readyPath?: string
  /** The ready path answers with an error status (e.g. 401 without a token). */
  anyStatus?: boolean
  cwd?: string
  stdio?: StdioOptions
}): Promise<Target> {
  const child = spawn(options.command, options.args, { cwd: options.cwd, env: options.env, stdio: options.stdio ?? 'inherit' })
  const url = `http://127.0.0.1:${options.port}`
  try {
    await waitFor(url + (options.readyPath ?? '/'), { anyStatus: options.anyStatus, exited: () => child.exitCode !== null || child.signalCode !== null })
  } catch (error) {
    await stopChild(child)
    throw error
  }
  const rss = sampleRss(child.pid!)
  return { url, pid: child.pid!, rss, stop: async () => { rss.stop(); await stopChild(child) } }
}

/** How our server is started: the same for every scenario that starts one. */
export interface ApiServerSettings {
  /** A shell command: package.json's start script (without its prestart build), or BENCH_START. */
  startScript: string
  /** The node binary whose directory goes first on the server's PATH. */
  nodePath: string
  jwtSecret: string
  requestLog: string
  /** node --cpu-prof into this folder (bench --profile). */
  profileDir?: string
}

/** Our server as a child process on `databaseUrl`, with production settings but RATE_LIMITS=off. */
export async function startApiServer (settings: ApiServerSettings, options: { databaseUrl: string, dir: string, env?: Record<string, string> }): Promise<Target> {
  const port = await freePort()
  // Logs go to a file, as they would to a collector: written, not thrown away.
  const logFile = openSync(join(options.dir, `server-${port}.log`), 'a')
  // --cpu-prof is not allowed in NODE_OPTIONS: it goes right after the script's `node`.
  const script = settings.profileDir ? settings.startScript.replace(/\bnode\b/, `node --cpu-prof --cpu-prof-dir=${settings.profileDir}`) : settings.startScript
  return startProcess({
    // sh's exec (in the start script) replaces the shell: the child's pid is the server's.
    command: '/bin/sh',
    args: ['-c', script],
    cwd: ROOT,
    port,
    readyPath: '/health/ready',
    env: {
      PATH: `${dirname(settings.nodePath)}:${process.env.PATH ?? ''}`,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: options.databaseUrl,
      DATA_DIR: options.dir,
      JWT_SECRET: settings.jwtSecret,
      // One client address sends every login: per-IP limits and lockout would measure themselves.
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'info',
      REQUEST_LOG: settings.requestLog,
      WORKERS: process.env.BENCH_WORKERS ?? '1',
      // BENCH_SERVER_X=v sets X=v for the server (A/B runs of a setting).
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('BENCH_SERVER_') && name !== 'BENCH_SERVER_STDERR')
        .map(([name, value]) => [name.slice('BENCH_SERVER_'.length), value ?? ''])),
      ...options.env
    },
    stdio: ['ignore', logFile, process.env.BENCH_SERVER_STDERR ? 'inherit' : logFile]
  })
}
