import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { runCli } from './cli-process.js'
import { createTestDatabase, DIALECTS, newUserData } from './helpers.js'
import { linkIn, mailTo, startMailServer } from './mail.js'
import { request, startServer } from './server-process.js'

// The outbox as a running server uses it: the development log transport, a server killed in
// the middle of a send (its lease runs out and another process sends the row), and the
// operator's `npm run cli -- outbox` / `outbox retry`.

function scratch (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-outbox-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('email without an SMTP server', () => {
  it('warns at start, writes each email whole to the log with its link, and the link works', async (t) => {
    const dir = scratch(t)
    const server = await startServer(t, { DATA_DIR: dir }, { cwd: dir })
    await server.waitForLog((line) => line.level === 40 && /SMTP_URL is not set: emails are written to the log/.test(line.msg))
    const data = newUserData('devlog')
    assert.equal((await request(`${server.url}/users/signup`, { method: 'POST', body: data })).status, 201)
    const line = await server.waitForLog((entry) => entry.msg === 'email (logged, not sent: SMTP_URL is not set)' && entry.email?.to === data.email)
    assert.equal(line.level, 30)
    assert.match(line.email.subject, /Confirm your email address/)
    const token = /verify-email#token=([A-Za-z0-9_-]+)/.exec(line.email.text)![1]
    const confirmed = await request(`${server.url}/users/verify-email/confirm`, { method: 'POST', body: { token } })
    assert.equal(confirmed.status, 200, confirmed.body)
  })
})

for (const dialect of DIALECTS) {
  describe(`outbox across processes (${dialect.name})`, { skip: dialect.skip }, () => {
    it('sends a row claimed by a server that was SIGKILLed mid-send once its lease runs out', async (t) => {
      const dir = scratch(t)
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      const mail = await startMailServer(t)
      mail.stall = true
      // Lease: 4 x MAIL_SEND_TIMEOUT (see outbox-worker.ts); 1 s here.
      const env = { DATA_DIR: dir, DATABASE_URL: database.url, SMTP_URL: mail.url, MAIL_FROM: 'no-reply@example.test', MAIL_SEND_TIMEOUT: '1', MAIL_POLL_INTERVAL: '1', EMAIL_VERIFICATION: 'off' }
      const first = await startServer(t, env, { cwd: dir })
      const data = newUserData('killed')
      assert.equal((await request(`${first.url}/users/signup`, { method: 'POST', body: data })).status, 201)
      const sending = mail.dataStarted()
      assert.equal((await request(`${first.url}/users/password-reset/request`, { method: 'POST', body: { email: data.email } })).status, 202)
      await sending
      process.kill(-first.child.pid!, 'SIGKILL')
      await first.exited
      mail.stall = false

      const killedAt = Date.now()
      const second = await startServer(t, env, { cwd: dir })
      const message = await mail.waitFor(mailTo(data.email, /Reset your/))
      assert.ok(Date.now() - killedAt >= 1500, 'not before the first server\'s lease ran out')
      const { token } = linkIn(message)
      const reset = await request(`${second.url}/users/password-reset/confirm`, { method: 'POST', body: { token, new_password: `after-${data.password}` } })
      assert.equal(reset.status, 200, reset.body)
      assert.equal(mail.messages.filter(mailTo(data.email, /Reset your/)).length, 1)
    })

    it('lists pending and dead emails with `cli outbox` and requeues the dead with `cli outbox retry`', async (t) => {
      const dir = scratch(t)
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      const mail = await startMailServer(t)
      mail.refuse = true
      const env = { DATA_DIR: dir, DATABASE_URL: database.url, SMTP_URL: mail.url, MAIL_FROM: 'no-reply@example.test', MAIL_MAX_ATTEMPTS: '1', MAIL_POLL_INTERVAL: '1', EMAIL_VERIFICATION: 'off' }
      const server = await startServer(t, env, { cwd: dir })
      const data = newUserData('cli')
      await request(`${server.url}/users/signup`, { method: 'POST', body: data })
      await request(`${server.url}/users/password-reset/request`, { method: 'POST', body: { email: data.email } })
      await server.waitForLog((line) => line.msg === 'email delivery failed for the last time: marked dead')

      const listed = await runCli(database.url, ['outbox'])
      assert.equal(listed.code, 0, listed.stderr)
      assert.match(listed.stdout, /^Outbox: 0 pending, 1 dead$/m)
      assert.match(listed.stdout, new RegExp(`#\\d+ dead reset_password to ${data.email}, queued .*, 1 attempt, gave up; last error: .*451`))
      assert.match(listed.stdout, /npm run cli -- outbox retry/)
      assert.ok(!/token|seed/i.test(listed.stdout))

      mail.refuse = false
      const retried = await runCli(database.url, ['outbox', 'retry'])
      assert.equal(retried.code, 0, retried.stderr)
      assert.match(retried.stdout, /Requeued 1 dead email/)
      const message = await mail.waitFor(mailTo(data.email, /Reset your/))
      const reset = await request(`${server.url}/users/password-reset/confirm`, { method: 'POST', body: { token: linkIn(message).token, new_password: `retried-${data.password}` } })
      assert.equal(reset.status, 200, 'the requeued link still works')
      assert.match((await runCli(database.url, ['outbox'])).stdout, /^Outbox: 0 pending, 0 dead$/m)
      const wrong = await runCli(database.url, ['outbox', 'resend'])
      assert.equal(wrong.code, 1)
      assert.match(wrong.stderr, /outbox takes "retry" after its name/)
    })
  })
}
