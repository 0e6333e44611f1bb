// POST /users/password-reset/request: what a visitor who forgot their password sends. Measured
// twice, for existing accounts and for unknown emails: the answer must cost the same time either
// way (the request must not reveal whether an account exists), so the two rows' p50 and p99 are
// the figures to compare. Each request queues (or, past the per-address limits, drops) an email
// and writes an audit event in one transaction; the server has no SMTP_URL, so its outbox worker
// writes the emails to the log, as after `npm ci && npm start`.
import { medianOf, type Scenario } from '../lib/bench.js'
import type { HttpRequest } from '../lib/wrk.js'

const resetRequests = (emails: string[]): HttpRequest[] => emails.map((email) => ({
  method: 'POST',
  path: '/users/password-reset/request',
  headers: { 'Content-Type': 'application/json' },
  body: JSON.stringify({ email })
}))

export const resetRequest: Scenario = {
  name: 'reset-request',
  description: 'POST /users/password-reset/request for existing accounts and for unknown emails (same time expected)',
  async run (bench) {
    const server = await bench.mainServer()
    const count = Math.min(bench.settings.users, 10_000)
    const known = resetRequests(Array.from({ length: count }, (_, i) => `bench${i + 1}@example.com`))
    const unknown = resetRequests(Array.from({ length: count }, (_, i) => `nobody${i + 1}-${bench.runId}@example.com`))
    const rows = []
    for (const [label, requests] of [['existing accounts', known], ['unknown emails', unknown]] as const) {
      rows.push(await bench.measure({
        label: `POST /users/password-reset/request, ${label}`,
        target: server,
        load: (duration) => bench.wrk(server.url, { requests, duration })
      }))
    }
    const [existing, missing] = rows
    bench.note(`reset request p50: ${medianOf(existing, 'p50').toFixed(1)} ms for existing accounts, ${medianOf(missing, 'p50').toFixed(1)} ms for unknown emails ` +
      `(medians; at saturation the first request per address and minute queues an email, the rest are dropped by the per-address limit)`)
  }
}
