import cluster from 'node:cluster'
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import { AggregatorRegistry, collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

export type LoginOutcome = 'success' | 'failure' | 'locked' | 'refused' | 'mfa_required'

/** The app's Prometheus metrics, on a registry of its own (several apps in one process do not clash). */
export interface Metrics {
  registry: Registry
  httpRequests: Counter<'method' | 'route' | 'status_code'>
  httpRequestDuration: Histogram<'method' | 'route' | 'status_code'>
  /** success, failure (wrong email or password), locked (refused by the per-account lockout), refused (right password, account may not log in now), mfa_required (right password, a second factor is owed). */
  loginAttempts: Counter<'outcome'>
  /** Second-factor codes checked (login, TOTP confirmation, TOTP removal): success, failure (wrong or used code), locked (refused by the MFA lockout). */
  mfaCodeChecks: Counter<'outcome'>
  /** Locks started by repeated failed logins. */
  lockouts: Counter
  /** Seconds one argon2/bcrypt hash or verification took, without the wait for a hashing slot. */
  hashDuration: Histogram<'operation'>
  /** unavailable (outage, lock timeout: answered 503) or query (anything else: a 500). */
  dbErrors: Counter<'kind'>
}

/** Messages between a cluster worker serving GET /metrics and the primary that aggregates all workers. */
export const CLUSTER_METRICS_REQUEST = 'uma:metrics-request'
export const CLUSTER_METRICS_RESPONSE = 'uma:metrics-response'

export function createMetrics (): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const httpLabels = ['method', 'route', 'status_code'] as const
  const metrics: Metrics = {
    registry,
    httpRequests: new Counter({ name: 'http_requests_total', help: 'HTTP requests by route pattern and status', labelNames: httpLabels, registers: [registry] }),
    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route pattern and status',
      labelNames: httpLabels,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry]
    }),
    loginAttempts: new Counter({ name: 'auth_login_attempts_total', help: 'Password logins by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    mfaCodeChecks: new Counter({ name: 'auth_mfa_code_checks_total', help: 'Second-factor codes checked, by outcome', labelNames: ['outcome'] as const, registers: [registry] }),
    lockouts: new Counter({ name: 'auth_lockouts_total', help: 'Account lockouts started after repeated failed logins', registers: [registry] }),
    hashDuration: new Histogram({
      name: 'password_hash_duration_seconds',
      help: 'Time one password hash or verification took (argon2id, or bcrypt for legacy hashes)',
      labelNames: ['operation'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2],
      registers: [registry]
    }),
    dbErrors: new Counter({ name: 'db_errors_total', help: 'Database errors seen by requests and readiness checks', labelNames: ['kind'] as const, registers: [registry] })
  }
  // Every series exists from the start at 0, so rate() and alerts see the first increment.
  for (const outcome of ['success', 'failure', 'locked', 'refused', 'mfa_required'] as const) metrics.loginAttempts.inc({ outcome }, 0)
  for (const outcome of ['success', 'failure', 'locked'] as const) metrics.mfaCodeChecks.inc({ outcome }, 0)
  for (const kind of ['unavailable', 'query'] as const) metrics.dbErrors.inc({ kind }, 0)
  return metrics
}

/** In a cluster worker: the metrics of every worker, aggregated by the primary (see cluster.ts). */
function clusterMetrics (timeoutMs: number): Promise<string> {
  const id = randomUUID()
  return new Promise((resolve, reject) => {
    const onMessage = (message: { type?: string, id?: string, body?: string, error?: string }) => {
      if (message?.type !== CLUSTER_METRICS_RESPONSE || message.id !== id) return
      done()
      if (message.error !== undefined) reject(new Error(message.error))
      else resolve(message.body ?? '')
    }
    const timer = setTimeout(() => {
      done()
      reject(new Error('the cluster primary did not answer the metrics request'))
    }, timeoutMs)
    const done = () => {
      clearTimeout(timer)
      process.off('message', onMessage)
    }
    process.on('message', onMessage)
    process.send!({ type: CLUSTER_METRICS_REQUEST, id })
  })
}

const digest = (value: string) => createHash('sha256').update(value).digest()

/**
 * Request count and latency by route pattern (/users/:user_id, never the raw URL, so the label
 * set stays small) and GET /metrics in the Prometheus text format.
 *
 * Protection: METRICS=off removes the endpoint; METRICS_TOKEN requires `Authorization: Bearer
 * <token>`. Without a token it is open to whoever reaches the port: fine on the default
 * 127.0.0.1 bind or a private network, otherwise set the token or block /metrics at the proxy.
 * It reveals traffic volumes and route names, never user data.
 */
export default fp<{ metrics: Metrics }>(async (app, { metrics }) => {
  app.decorate('metrics', metrics)

  // Callback style, not async: this runs on every request and a promise per hook adds up.
  app.addHook('onResponse', (request, reply, done) => {
    const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }
    metrics.httpRequests.inc(labels)
    metrics.httpRequestDuration.observe(labels, reply.elapsedTime / 1000)
    done()
  })

  if (!app.config.metrics) return
  const inCluster = cluster.isWorker && process.send !== undefined
  if (inCluster) {
    // Answer the primary's aggregation requests with this app's registry.
    new AggregatorRegistry()
    AggregatorRegistry.setRegistries([metrics.registry])
  }
  const token = app.config.metricsToken === undefined ? undefined : digest(app.config.metricsToken)

  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    if (token !== undefined) {
      const presented = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
      if (presented === undefined || !timingSafeEqual(digest(presented), token)) {
        return reply.code(401).header('www-authenticate', 'Bearer realm="metrics"').send({ detail: 'Not authenticated' })
      }
    }
    const body = inCluster ? await clusterMetrics(6000) : await metrics.registry.metrics()
    return reply.type(metrics.registry.contentType).send(body)
  })
}, { name: 'metrics' })
