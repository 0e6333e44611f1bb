import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

// Entry point only: environment -> config -> app -> listen, and a graceful close on signals.

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

const app = await buildApp(config)
app.log.info({ database: config.database.display }, 'database ready')

let closing = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    app.close().then(() => process.exit(0), (error) => {
      app.log.error({ err: error }, 'error while shutting down')
      process.exit(1)
    })
  })
}

await app.listen({ host: config.host, port: config.port })
