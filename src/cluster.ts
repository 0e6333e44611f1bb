import cluster, { type Worker } from 'node:cluster'
import { AggregatorRegistry } from 'prom-client'
import type { Config } from './config.js'
import { CLUSTER_METRICS_REQUEST, CLUSTER_METRICS_RESPONSE } from './plugins/metrics.js'

// The WORKERS>1 primary: it serves nothing itself. It forks the workers (each runs the whole
// app, sharing the port through node:cluster), replaces a worker that dies unexpectedly,
// forwards SIGTERM/SIGINT for a graceful shutdown, and aggregates /metrics across workers.

const LEVELS = { info: 30, warn: 40, error: 50 } as const

/** One pino-shaped JSON line: the primary has no Fastify app and so no logger of its own. */
function log (level: keyof typeof LEVELS, msg: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ level: LEVELS[level], time: Date.now(), pid: process.pid, role: 'primary', ...fields, msg }) + '\n')
}

/** Runs the cluster primary; returns at once, the process lives on its workers and signals. */
export function runPrimary (config: Config): void {
  const aggregator = new AggregatorRegistry()
  let stopping = false
  let started = false
  let failedOnStop = false
  let recentCrashes: number[] = []

  const live = () => Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined)
  const fork = () => {
    const worker = cluster.fork()
    log('info', 'worker started', { workerPid: worker.process.pid })
    return worker
  }

  cluster.on('message', (worker, message: { type?: string, id?: string }) => {
    if (message?.type !== CLUSTER_METRICS_REQUEST) return
    const reply = (answer: { body?: string, error?: string }) => {
      if (worker.isConnected()) worker.send({ type: CLUSTER_METRICS_RESPONSE, id: message.id, ...answer })
    }
    aggregator.clusterMetrics().then((body) => reply({ body }), (error: Error) => reply({ error: error.message }))
  })

  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (code !== 0) failedOnStop = true
      log(code === 0 ? 'info' : 'warn', 'worker stopped', { workerPid: worker.process.pid, code, signal })
      if (live().length === 0) {
        log('info', 'all workers stopped')
        process.exit(failedOnStop ? 1 : 0)
      }
      return
    }
    if (!started) {
      // The first worker could not start (bad configuration, database unreachable): so would the rest.
      log('error', 'worker failed to start; exiting', { workerPid: worker.process.pid, code, signal })
      stopping = true
      for (const other of live()) other.process.kill('SIGTERM')
      process.exit(1)
    }
    const now = Date.now()
    recentCrashes = [...recentCrashes.filter((at) => now - at < 60_000), now]
    // Back off when workers keep dying (a crash loop must not spin the CPU), up to 10 s.
    const delay = Math.min(10_000, 250 * 2 ** (recentCrashes.length - 1))
    log('error', 'worker died unexpectedly; starting a replacement', { workerPid: worker.process.pid, code, signal, restartInMs: delay })
    setTimeout(() => {
      if (!stopping) fork()
    }, delay)
  })

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    log('info', 'shutting down workers', { signal, workers: live().length })
    if (live().length === 0) process.exit(0)
    for (const worker of live()) worker.process.kill('SIGTERM')
    // Workers bound their own shutdown by SHUTDOWN_DELAY + SHUTDOWN_GRACE; this is the backstop.
    setTimeout(() => {
      log('error', 'workers did not stop in time; killing them')
      for (const worker of live()) worker.process.kill('SIGKILL')
      process.exit(1)
    }, (config.shutdownDelay + config.shutdownGrace + 15) * 1000).unref()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))

  // One worker first: it runs the migrations alone (on SQLite, two processes migrating the same
  // file at once can collide); the others start once it listens, on a current schema.
  log('info', 'starting workers', { workers: config.workers })
  const first = fork()
  first.once('listening', () => {
    started = true
    for (let i = 1; i < config.workers && !stopping; i++) fork()
  })
}
