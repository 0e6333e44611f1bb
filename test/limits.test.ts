import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { authed, buildTestApp, createClock, createUser, DIALECTS, json, login, newUserData, signup } from './helpers.js'

// Abuse protection: the per-account lockout (timings through an injected clock), the per-IP
// limits and which address they count, RATE_LIMITS=off, bounded password hashing, and the
// password policy's messages. Counters live in memory here; test/redis.test.ts shares them.

const SECOND = 1000

function attempt (app: FastifyInstance, email: string, password: string, extra: Partial<InjectOptions> = {}): Promise<LightMyRequestResponse> {
  return app.inject({ method: 'POST', url: '/users/login', payload: { email, password }, ...extra })
}

async function failTimes (app: FastifyInstance, email: string, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    const response = await attempt(app, email, 'not-the-password-1')
    assert.equal(response.statusCode, 401, `failure ${i + 1}: ${response.body}`)
  }
}

/** Asserts a lockout refusal and returns its Retry-After in seconds. */
function assertLocked (response: LightMyRequestResponse): number {
  assert.equal(response.statusCode, 429, response.body)
  const retryAfter = Number(response.headers['retry-after'])
  assert.ok(Number.isInteger(retryAfter) && retryAfter > 0, `Retry-After: ${response.headers['retry-after']}`)
  assert.equal(json(response).detail, `Too many failed logins for this account; try again in ${retryAfter} seconds`)
  return retryAfter
}

function unknownEmail (): string {
  return `nobody-${randomBytes(4).toString('hex')}@example.com`
}

for (const dialect of DIALECTS) {
  describe(`account lockout (${dialect.name})`, { skip: dialect.skip }, () => {
    it('refuses the 6th attempt after 5 failures with 429 and Retry-After 60, even with the correct password', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      await failTimes(app, user.email, 5)
      const refused = await attempt(app, user.email, user.password)
      assert.equal(assertLocked(refused), 60)
      const sessions = await app.db.kysely.selectFrom('sessions').select('id').where('user_id', '=', user.id).execute()
      assert.equal(sessions.length, 0, 'no session was opened')
    })

    it('answers an unknown email exactly as an existing one', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      const ghost = unknownEmail()
      for (let i = 0; i < 5; i++) {
        const known = await attempt(app, user.email, 'not-the-password-1')
        const unknown = await attempt(app, ghost, 'not-the-password-1')
        assert.equal(known.statusCode, 401)
        assert.equal(unknown.statusCode, 401)
        assert.equal(unknown.body, known.body)
      }
      const known = await attempt(app, user.email, user.password)
      const unknown = await attempt(app, ghost, user.password)
      assert.equal(assertLocked(known), 60)
      assert.equal(assertLocked(unknown), 60)
      assert.equal(unknown.body, known.body)
      const headerNames = (response: LightMyRequestResponse) => Object.keys(response.headers).filter((name) => name !== 'x-request-id' && name !== 'date').sort()
      assert.deepEqual(headerNames(unknown), headerNames(known))
      assert.equal(unknown.headers['retry-after'], known.headers['retry-after'])
    })

    it('lets a correct login through once the lock expires, and that success resets the count', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      await failTimes(app, user.email, 5)
      clock.advance(59 * SECOND)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 1)
      clock.advance(SECOND)
      assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)

      // Reset: four failures are not enough for a lock, and the next lock starts at 60 s again.
      await failTimes(app, user.email, 4)
      assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)
      await failTimes(app, user.email, 4)
      assert.equal((await attempt(app, user.email, 'not-the-password-1')).statusCode, 401)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 60)
    })

    it('doubles each further lock, 60 s up to a 900 s cap, and refused attempts do not extend it', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      await failTimes(app, user.email, 5)
      for (const expected of [60, 120, 240, 480, 900, 900, 900]) {
        assert.equal(assertLocked(await attempt(app, user.email, user.password)), expected)
        // Hammering during the lock changes nothing: still the same end time.
        for (let i = 0; i < 3; i++) assertLocked(await attempt(app, user.email, 'not-the-password-1'))
        clock.advance((expected - 1) * SECOND)
        assert.equal(assertLocked(await attempt(app, user.email, user.password)), 1, 'never longer than announced')
        clock.advance(SECOND)
        // The lock has expired: one more failure locks again, for twice as long (capped).
        await failTimes(app, user.email, 1)
      }
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 900)
      clock.advance(900 * SECOND)
      assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)
      await failTimes(app, user.email, 5)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 60, 'the success reset the doubling too')
    })

    it('starts one 60 s lock, not a longer one, when a burst of concurrent failures races past the check', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      const burst = await Promise.all(Array.from({ length: 12 }, () => attempt(app, user.email, 'not-the-password-1')))
      for (const response of burst) assert.ok([401, 429].includes(response.statusCode), response.body)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 60)
      const lockouts = await app.db.kysely.selectFrom('audit_events').select('id').where('type', '=', 'lockout').execute()
      assert.equal(lockouts.length, 1)
      clock.advance(60 * SECOND)
      assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)
    })

    it('checks exactly 5 passwords for a burst of 40 concurrent wrong logins; the rest are refused', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const user = await signup(app)
      const burst = await Promise.all(Array.from({ length: 40 }, () => attempt(app, user.email, 'not-the-password-1')))
      const checked = burst.filter((response) => response.statusCode === 401)
      assert.equal(checked.length, 5, 'as many guesses as sequential attempts would get')
      for (const response of burst.filter((response) => response.statusCode !== 401)) assertLocked(response)
      const failures = await app.db.kysely.selectFrom('audit_events').select('id')
        .where('type', '=', 'login').where('outcome', '=', 'failure').execute()
      assert.equal(failures.length, 5)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 60)
    })

    it('gives the attempt back when it ends without a verdict (hashing queue full)', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: { HASH_CONCURRENCY: '1', HASH_QUEUE_LIMIT: '0' }, overrides: { now: clock.now } })
      const user = await signup(app)
      const burst = await Promise.all(Array.from({ length: 5 }, () => attempt(app, user.email, 'not-the-password-1')))
      const checked = burst.filter((response) => response.statusCode === 401).length
      assert.ok(checked >= 1 && burst.some((response) => response.statusCode === 503), burst.map((response) => response.statusCode).join())
      assert.equal(checked + burst.filter((response) => response.statusCode === 503).length, 5)
      // The 503s used up nothing: the account still has 5 - checked failures before its lock.
      await failTimes(app, user.email, 5 - checked)
      assert.equal(assertLocked(await attempt(app, user.email, user.password)), 60)
    })

    it('counts an email in any case and with surrounding spaces as one account', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
      const data = newUserData('Mixed')
      const user = await signup(app, { ...data, email: data.email.replace('@example.com', '@Example.COM') })
      const lower = user.email.toLowerCase()
      for (const variant of [lower, lower.toUpperCase(), user.email, ` ${lower} `, `${lower[0].toUpperCase()}${lower.slice(1)}`]) {
        assert.equal((await attempt(app, variant, 'not-the-password-1')).statusCode, 401, variant)
      }
      assertLocked(await attempt(app, lower, user.password))
      assertLocked(await attempt(app, lower.toUpperCase(), user.password))
    })

    it('follows LOCKOUT_THRESHOLD, LOCKOUT_DURATION and LOCKOUT_MAX_DURATION', async (t) => {
      const clock = createClock()
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: { LOCKOUT_THRESHOLD: '2', LOCKOUT_DURATION: '10s', LOCKOUT_MAX_DURATION: '15s' }, overrides: { now: clock.now } })
      const email = unknownEmail()
      await failTimes(app, email, 2)
      assert.equal(assertLocked(await attempt(app, email, 'x')), 10)
      clock.advance(10 * SECOND)
      await failTimes(app, email, 1)
      assert.equal(assertLocked(await attempt(app, email, 'x')), 15, 'capped')
    })
  })
}

describe('per-IP limits', () => {
  it('refuses the 4th signup from one address with SIGNUP_IP_LIMIT=3/5m; other addresses are unaffected', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { SIGNUP_IP_LIMIT: '3/5m' } })
    const from = (remoteAddress: string, body = newUserData()) => app.inject({ method: 'POST', url: '/users/signup', payload: body, remoteAddress })
    for (let i = 0; i < 3; i++) assert.equal((await from('192.0.2.1')).statusCode, 201)
    const refusedData = newUserData()
    const refused = await from('192.0.2.1', refusedData)
    assert.equal(refused.statusCode, 429)
    const retryAfter = Number(refused.headers['retry-after'])
    assert.ok(retryAfter > 0 && retryAfter <= 300, `Retry-After: ${refused.headers['retry-after']}`)
    assert.match(json(refused).detail, /^Too many requests from your address; retry in \d+ seconds$/)
    const stored = await app.db.kysely.selectFrom('users').select('id').where('email_normalized', '=', refusedData.email).executeTakeFirst()
    assert.equal(stored, undefined, 'the refused signup created nothing')
    assert.equal((await from('192.0.2.2')).statusCode, 201)
    // Another route's limit is separate.
    assert.equal((await app.inject({ method: 'POST', url: '/users/login', payload: { email: unknownEmail(), password: 'x' }, remoteAddress: '192.0.2.1' })).statusCode, 401)
  })

  it('refuses the 4th login from one address with LOGIN_IP_LIMIT=3/5m, even with correct credentials', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { LOGIN_IP_LIMIT: '3/5m' } })
    const user = await signup(app)
    for (let i = 0; i < 3; i++) assert.equal((await attempt(app, unknownEmail(), 'x', { remoteAddress: '192.0.2.1' })).statusCode, 401)
    const refused = await attempt(app, user.email, user.password, { remoteAddress: '192.0.2.1' })
    assert.equal(refused.statusCode, 429)
    assert.ok(Number(refused.headers['retry-after']) > 0)
    assert.match(json(refused).detail, /from your address/)
    assert.equal((await attempt(app, user.email, user.password, { remoteAddress: '192.0.2.2' })).statusCode, 200)
  })

  it('refuses the 4th refresh from one address with REFRESH_IP_LIMIT=3/5m', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { REFRESH_IP_LIMIT: '3/5m' } })
    const refresh = (remoteAddress: string) => app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: 'A'.repeat(43) }, remoteAddress })
    for (let i = 0; i < 3; i++) assert.equal((await refresh('192.0.2.1')).statusCode, 401)
    const refused = await refresh('192.0.2.1')
    assert.equal(refused.statusCode, 429)
    assert.ok(Number(refused.headers['retry-after']) > 0)
    assert.equal((await refresh('192.0.2.2')).statusCode, 401)
  })

  it('counts an IPv6 /64 as one address, and an IPv4-mapped address as its IPv4 address', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { LOGIN_IP_LIMIT: '3/5m' } })
    const from = (remoteAddress: string) => attempt(app, unknownEmail(), 'x', { remoteAddress })
    for (const address of ['2001:db8:1:2::1', '2001:db8:1:2::2', '2001:db8:1:2:ffff::3']) assert.equal((await from(address)).statusCode, 401)
    assert.equal((await from('2001:db8:1:2::4')).statusCode, 429, 'one client rotating through its own /64')
    assert.equal((await from('2001:db8:1:3::1')).statusCode, 401, 'the next /64 is someone else')

    for (const address of ['192.0.2.9', '::ffff:192.0.2.9', '192.0.2.9']) assert.equal((await from(address)).statusCode, 401)
    assert.equal((await from('::ffff:192.0.2.9')).statusCode, 429)
  })

  it('does not believe X-Forwarded-For without TRUST_PROXY', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { SIGNUP_IP_LIMIT: '3/5m' } })
    const from = (forwarded: string) => app.inject({ method: 'POST', url: '/users/signup', payload: newUserData(), remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': forwarded } })
    for (const forwarded of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) assert.equal((await from(forwarded)).statusCode, 201)
    assert.equal((await from('198.51.100.4')).statusCode, 429)
    const events = await app.db.kysely.selectFrom('audit_events').select('ip').where('type', '=', 'signup').execute()
    assert.deepEqual(events.map((event) => event.ip), ['10.0.0.1', '10.0.0.1', '10.0.0.1'], 'the audit log records the peer address')
  })

  it('counts each X-Forwarded-For client separately with TRUST_PROXY=true', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { TRUST_PROXY: 'true', LOGIN_IP_LIMIT: '3/5m' } })
    const user = await signup(app)
    const from = (forwarded: string, email = unknownEmail(), password = 'x') => attempt(app, email, password, { remoteAddress: '10.0.0.1', headers: { 'x-forwarded-for': forwarded } })
    for (let i = 0; i < 3; i++) assert.equal((await from('198.51.100.1')).statusCode, 401)
    assert.equal((await from('198.51.100.1')).statusCode, 429)
    const other = await from('198.51.100.2', user.email, user.password)
    assert.equal(other.statusCode, 200, 'another client behind the same proxy is not limited')
    const session = await app.db.kysely.selectFrom('sessions').select('ip').where('user_id', '=', user.id).executeTakeFirstOrThrow()
    assert.equal(session.ip, '198.51.100.2', 'the session records the forwarded client address')
  })

  it('with RATE_LIMITS=off refuses nothing: neither per-IP limits nor the lockout', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { RATE_LIMITS: 'off', SIGNUP_IP_LIMIT: '1/5m', LOGIN_IP_LIMIT: '1/5m', REFRESH_IP_LIMIT: '1/5m' } })
    const user = await signup(app)
    assert.equal((await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() })).statusCode, 201)
    for (let i = 0; i < 7; i++) assert.equal((await attempt(app, user.email, 'not-the-password-1')).statusCode, 401)
    assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)
    for (let i = 0; i < 3; i++) assert.equal((await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: 'A'.repeat(43) } })).statusCode, 401)
    const lockouts = await app.db.kysely.selectFrom('audit_events').select('id').where('type', '=', 'lockout').execute()
    assert.equal(lockouts.length, 0)
  })
})

describe('bounded password hashing', () => {
  it('answers excess concurrent logins with a fast 503 and Retry-After, and keeps serving other requests', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { HASH_CONCURRENCY: '1', HASH_QUEUE_LIMIT: '1' } })
    const user = await createUser(app)
    const finished: string[] = []
    const logins = Array.from({ length: 8 }, (_, i) => {
      const body = i % 2 === 0 ? { email: user.email, password: user.password } : { email: unknownEmail(), password: 'x' }
      return app.inject({ method: 'POST', url: '/users/login', payload: body }).then((response) => {
        finished.push(`login ${response.statusCode}`)
        return response
      })
    })
    const read = authed(app, user.token, { method: 'GET', url: `/users/${user.id}` }).then((response) => {
      finished.push('read')
      return response
    })
    const [responses, readResponse] = await Promise.all([Promise.all(logins), read])

    assert.equal(readResponse.statusCode, 200)
    assert.equal(json(readResponse).id, user.id)
    const statuses = responses.map((response) => response.statusCode)
    assert.ok(statuses.every((status) => [200, 401, 503].includes(status)), `statuses: ${statuses.join(',')}`)
    assert.ok(statuses.includes(503), `at least one fast 503: ${statuses.join(',')}`)
    assert.ok(statuses.some((status) => status !== 503), 'the hashing slot still serves')
    for (const response of responses.filter((r) => r.statusCode === 503)) {
      assert.equal(response.headers['retry-after'], '1')
      assert.match(json(response).detail, /retry shortly/)
    }
    for (const response of responses.filter((r) => r.statusCode === 200)) assert.ok(json(response).access_token)
    assert.ok(finished.indexOf('read') < finished.lastIndexOf('login 200') || finished.indexOf('read') < finished.lastIndexOf('login 401'),
      `the read did not wait for the hashing queue: ${finished.join(', ')}`)

    // Nothing is left holding a slot: the next login is served.
    assert.equal(app.passwords.pool.pending, 0)
    assert.equal((await attempt(app, user.email, user.password)).statusCode, 200)
  })

  it('refuses an excess signup the same way and creates nothing for it', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { HASH_CONCURRENCY: '1', HASH_QUEUE_LIMIT: '0' } })
    const bodies = Array.from({ length: 4 }, () => newUserData())
    const responses = await Promise.all(bodies.map((payload) => app.inject({ method: 'POST', url: '/users/signup', payload })))
    const statuses = responses.map((response) => response.statusCode)
    assert.ok(statuses.every((status) => status === 201 || status === 503), statuses.join(','))
    assert.ok(statuses.includes(503) && statuses.includes(201), statuses.join(','))
    const users = await app.db.kysely.selectFrom('users').select('email').execute()
    assert.equal(users.length, statuses.filter((status) => status === 201).length)
  })
})

for (const dialect of DIALECTS) {
  describe(`password policy messages (${dialect.name})`, { skip: dialect.skip }, () => {
    const cases = (username: string, email: string) => [
      { password: 'short1!', reason: 'password: must be at least 8 characters' },
      { password: 'password123', reason: 'password: is one of the most commonly used passwords; choose a less guessable one' },
      { password: `My-${username.toUpperCase()}-pass!`, reason: 'password: must not contain your username' },
      { password: `x-${email.split('@')[0]}-2024!`, reason: 'password: must not contain the part of your email before the @' },
      { password: email, reason: 'password: must not be the same as your username or email' },
      { password: email.toUpperCase(), reason: 'password: must not be the same as your username or email' }
    ]

    it('refuses each weak password at signup with 400 and the reason', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const username = `walrus${randomBytes(2).toString('hex')}`
      const email = `kelp.${randomBytes(2).toString('hex')}@example.com`
      for (const { password, reason } of cases(username, email)) {
        const response = await app.inject({ method: 'POST', url: '/users/signup', payload: { username, email, password } })
        assert.equal(response.statusCode, 400, password)
        assert.equal(json(response).detail, reason)
      }
      const users = await app.db.kysely.selectFrom('users').select('id').execute()
      assert.equal(users.length, 0)
    })

    it('does not apply the containment rules to names shorter than 3 characters', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const response = await app.inject({ method: 'POST', url: '/users/signup', payload: { username: 'jo', email: 'al@example.com', password: 'joking-along-42' } })
      assert.equal(response.statusCode, 201, response.body)
    })

    it('names the configured minimum length', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name, env: { PASSWORD_MIN_LENGTH: '12' } })
      const response = await app.inject({ method: 'POST', url: '/users/signup', payload: { ...newUserData(), password: 'elevenchars' } })
      assert.equal(response.statusCode, 400)
      assert.equal(json(response).detail, 'password: must be at least 12 characters')
    })

    it('refuses each weak password on PUT with 400 and the reason, and changes nothing', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const data = { username: `walrus${randomBytes(2).toString('hex')}`, email: `kelp.${randomBytes(2).toString('hex')}@example.com`, password: 'a-decent-Passphrase-9' }
      const user = { ...await signup(app, data), token: await login(app, data.email, data.password) }
      const before = await app.db.kysely.selectFrom('users').select('hashed_password').where('id', '=', user.id).executeTakeFirstOrThrow()
      const put = (payload: object) => authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload })
      for (const { password, reason } of cases(user.username, user.email)) {
        const response = await put({ password })
        assert.equal(response.statusCode, 400, password)
        assert.equal(json(response).detail, reason)
      }
      // The rules apply to the new username and email when they change together.
      const renamed = await put({ username: 'narwhal', password: 'the-narwhal-bacon' })
      assert.equal(renamed.statusCode, 400)
      assert.equal(json(renamed).detail, 'password: must not contain your username')
      const rehomed = await put({ email: 'octopus@example.com', password: 'an-octopus-garden' })
      assert.equal(rehomed.statusCode, 400)
      assert.equal(json(rehomed).detail, 'password: must not contain the part of your email before the @')

      const after = await app.db.kysely.selectFrom('users').selectAll().where('id', '=', user.id).executeTakeFirstOrThrow()
      assert.equal(after.hashed_password, before.hashed_password)
      assert.equal(after.username, user.username)
      assert.equal(after.email, user.email)
    })
  })
}
