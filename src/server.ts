import cluster from 'node:cluster'
import { setTimeout as sleep } from 'node:timers/promises'
import { buildApp } from './app.js'
import { runPrimary } from './cluster.js'
import { ConfigError, loadConfig, type Config } from './config.js'
import { listen, type Listening } from './listen.js'
import { lowerHelperThreadPriority } from './thread-priority.js'

// Entry point only: environment -> config -> app -> listen, and a graceful close on signals.
// With WORKERS > 1 this process becomes the cluster primary and each worker runs this file too.

try {
  process.loadEnvFile()
} catch (error) {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
}

let config
try {
  config = loadConfig(process.env)
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(error.message)
    process.exit(1)
  }
  throw error
}

/**
 * SIGTERM/SIGINT: readiness turns 503 (for SHUTDOWN_DELAY the server keeps serving so a load
 * balancer can notice), then the server stops accepting and in-flight requests get
 * SHUTDOWN_GRACE to finish before their connections are cut; the database is closed (SQLite
 * checkpoints its WAL) and the process exits 0.
 */
async function serve (config: Config): Promise<void> {
  const app = await buildApp(config)
  app.log.info({ database: config.database.display }, 'database ready')
  const lowered = await lowerHelperThreadPriority(config.helperThreadNice)
  if (lowered > 0) app.log.info({ threads: lowered, nice: config.helperThreadNice }, 'helper threads (password hashing) run at a lower priority than the event loop')

  let closing = false
  const listening: { current?: Listening } = {}
  const shutdown = async (signal: NodeJS.Signals) => {
    // Repeated signals (a terminal's Ctrl-C reaches cluster workers and their primary) change nothing.
    if (closing) return
    closing = true
    app.log.info({ signal, delaySeconds: config.shutdownDelay, graceSeconds: config.shutdownGrace }, 'shutting down: readiness is now 503')
    app.beginShutdown()
    if (config.shutdownDelay > 0) await sleep(config.shutdownDelay * 1000)
    const cut = setTimeout(() => {
      app.log.warn('shutdown grace period over: closing the connections of unfinished requests')
      app.server.closeAllConnections()
      listening.current?.closeAllConnections()
    }, config.shutdownGrace * 1000)
    // Backstop should closing hang even after the connections are cut (e.g. a stuck database).
    setTimeout(() => {
      app.log.error('shutdown did not complete; exiting')
      process.exit(1)
    }, (config.shutdownGrace + 10) * 1000).unref()
    try {
      await app.close()
      clearTimeout(cut)
      app.log.info('shut down cleanly')
      process.exit(0)
    } catch (error) {
      app.log.error({ err: error }, 'error while shutting down')
      process.exit(1)
    }
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => void shutdown(signal))
  }

  listening.current = await listen(app, config)
}

if (config.workers > 1 && cluster.isPrimary) {
  runPrimary(config)
} else {
  try {
    await serve(config)
  } catch (error) {
    // A setting only checked while the app is built (a secret file, a template folder): its
    // message, not a stack trace.
    if (!(error instanceof ConfigError)) throw error
    console.error(error.message)
    process.exit(1)
  }
}
