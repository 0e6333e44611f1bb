import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import { authed, createUser, DIALECTS, json, newUserData, useSuiteApp } from './helpers.js'

const JSON_TYPE = { 'content-type': 'application/json' }

/** A client error answered as `{"detail": string}` whose message matches `detail`. */
function assertClientError (response: LightMyRequestResponse, status: number, detail: RegExp, label = '') {
  assert.equal(response.statusCode, status, `${label}: ${response.body}`)
  const body = json(response)
  assert.deepEqual(Object.keys(body), ['detail'], label)
  assert.match(body.detail, detail, label)
}

function rawSignup (app: FastifyInstance, payload: string, headers: InjectOptions['headers'] = JSON_TYPE) {
  return app.inject({ method: 'POST', url: '/users/signup', headers, payload })
}

function signupWith (app: FastifyInstance, fields: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/users/signup', payload: { ...newUserData(), ...fields } })
}

for (const dialect of DIALECTS) {
  describe(`bad input (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    const countUsers = async (where: { email?: string, username?: string }) => {
      let query = suite().app.db.kysely.selectFrom('users').select('id')
      if (where.email !== undefined) query = query.where('email_normalized', '=', where.email.toLowerCase())
      if (where.username !== undefined) query = query.where('username_normalized', '=', where.username.normalize('NFKC').toLowerCase())
      return (await query.execute()).length
    }

    describe('request bodies', () => {
      it('returns 400 for malformed JSON on signup, login and update', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const malformed = ['{"username":', '{username: "a"}', "{'a': 1}", '{"a":1,}', '\u0000']
        for (const payload of malformed) {
          assertClientError(await rawSignup(app, payload), 400, /not valid JSON/, payload)
          assertClientError(await app.inject({ method: 'POST', url: '/users/login', headers: JSON_TYPE, payload }), 400, /not valid JSON/, payload)
          assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, headers: JSON_TYPE, payload }), 400, /not valid JSON/, payload)
        }
      })

      it('returns 400 for wrong types without coercing them (123 is not a string, true is not a string)', async () => {
        const { app } = suite()
        const data = newUserData()
        assertClientError(await signupWith(app, { ...data, username: 123 }), 400, /^username: must be string$/)
        assertClientError(await signupWith(app, { ...data, password: true }), 400, /^password: must be string$/)
        assertClientError(await signupWith(app, { ...data, email: ['a@example.com'] }), 400, /^email: must be string$/)
        assertClientError(await signupWith(app, { ...data, username: null }), 400, /^username: must be string$/)
        assertClientError(await signupWith(app, { ...data, username: { first: 'a' } }), 400, /^username: must be string$/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', payload: { email: 12345, password: data.password } }),
          400, /^email: must be string$/)
        assert.equal(await countUsers({ email: data.email }), 0)
      })

      it('returns 400 for wrong types on update and changes nothing', async () => {
        const { app } = suite()
        const user = await createUser(app)
        for (const payload of [{ username: 123 }, { email: false }, { password: 12345678 }]) {
          const field = Object.keys(payload)[0]
          assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload }), 400, new RegExp(`^${field}: must be string$`))
        }
        const row = await app.db.kysely.selectFrom('users').select(['username', 'email']).where('id', '=', user.id).executeTakeFirstOrThrow()
        assert.deepEqual(row, { username: user.username, email: user.email })
      })

      it('returns 400 naming each missing field', async () => {
        const { app } = suite()
        const data = newUserData()
        for (const field of ['username', 'email', 'password'] as const) {
          const { [field]: _missing, ...rest } = data
          assertClientError(await app.inject({ method: 'POST', url: '/users/signup', payload: rest }), 400, new RegExp(`\\b${field}: is required`), field)
        }
        assertClientError(await app.inject({ method: 'POST', url: '/users/signup', payload: {} }), 400,
          /username: is required.*email: is required.*password: is required/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', payload: { email: data.email } }), 400, /^password: is required$/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', payload: { password: data.password } }), 400, /^email: is required$/)
      })

      it('returns 400 for bodies that are not JSON objects ([], "str", 42, null, true) and for no body', async () => {
        const { app } = suite()
        const user = await createUser(app)
        for (const payload of ['[]', '[{"username":"a"}]', '"str"', '42', 'null', 'true']) {
          assertClientError(await rawSignup(app, payload), 400, /request body must be a JSON object/, payload)
          assertClientError(await app.inject({ method: 'POST', url: '/users/login', headers: JSON_TYPE, payload }), 400, /must be a JSON object/, payload)
          assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, headers: JSON_TYPE, payload }), 400, /must be a JSON object/, payload)
        }
        assertClientError(await rawSignup(app, ''), 400, /empty/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/signup' }), 400, /JSON object/)
      })

      it('returns 400 for over-long values, naming the field and the limit', async () => {
        const { app } = suite()
        const data = newUserData()
        assertClientError(await signupWith(app, { ...data, username: 'a'.repeat(65) }), 400, /^username: .*64/)
        assertClientError(await signupWith(app, { ...data, email: `${'a'.repeat(250)}@example.com` }), 400, /^email: .*254/)
        assertClientError(await signupWith(app, { ...data, password: 'a'.repeat(1025) }), 400, /^password: /)
        assertClientError(await signupWith(app, { ...data, password: 'Qz7!'.repeat(64) + 'x' }), 400, /^password: must be at most 256 characters$/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', payload: { email: `${'a'.repeat(400)}@example.com`, password: 'x' } }), 400, /^email: /)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', payload: { email: data.email, password: 'x'.repeat(5000) } }), 400, /^password: /)
        assert.equal(await countUsers({ email: data.email }), 0)
      })

      it('returns 413 for a body over 16 KiB and still parses one just under', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const over = JSON.stringify({ ...newUserData(), username: 'a'.repeat(16 * 1024) })
        assert.ok(Buffer.byteLength(over) > 16 * 1024)
        assertClientError(await rawSignup(app, over), 413, /too large/)
        assertClientError(await app.inject({ method: 'POST', url: '/users/login', headers: JSON_TYPE, payload: over }), 413, /too large/)
        assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, headers: JSON_TYPE, payload: over }), 413, /too large/)
        const under = JSON.stringify({ ...newUserData(), username: 'a'.repeat(16 * 1024 - 200) })
        assert.ok(Buffer.byteLength(under) <= 16 * 1024)
        assertClientError(await rawSignup(app, under), 400, /^username: /)
      })

      it('returns 415 for non-JSON content types', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const data = newUserData()
        const bodies: Array<[string, string]> = [
          ['text/plain', JSON.stringify(data)],
          ['application/x-www-form-urlencoded', new URLSearchParams(data).toString()],
          ['multipart/form-data; boundary=x', `--x\r\nContent-Disposition: form-data; name="username"\r\n\r\n${data.username}\r\n--x--\r\n`],
          ['application/xml', '<user/>']
        ]
        for (const [type, payload] of bodies) {
          assertClientError(await rawSignup(app, payload, { 'content-type': type }), 415, /application\/json/, type)
          assertClientError(await app.inject({ method: 'POST', url: '/users/login', headers: { 'content-type': type }, payload }), 415, /application\/json/, type)
          assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, headers: { 'content-type': type }, payload }), 415, /application\/json/, type)
        }
        assert.equal(await countUsers({ email: data.email }), 0)
      })

      it('accepts application/json with a charset', async () => {
        const { app } = suite()
        const response = await rawSignup(app, JSON.stringify(newUserData()), { 'content-type': 'application/json; charset=utf-8' })
        assert.equal(response.statusCode, 201, response.body)
      })

      it('returns 400 for __proto__ and constructor.prototype payloads, creates nothing and pollutes nothing', async () => {
        const { app } = suite()
        const data = newUserData()
        const fields = JSON.stringify(data).slice(1, -1)
        const payloads = [
          `{${fields},"__proto__":{"role":"admin","isAdmin":true}}`,
          `{"__proto__":{"role":"admin"},${fields}}`,
          `{${fields},"constructor":{"prototype":{"role":"admin","isAdmin":true}}}`
        ]
        for (const payload of payloads) {
          assert.ok(payload.includes('__proto__') || payload.includes('prototype'))
          assertClientError(await rawSignup(app, payload), 400, /__proto__\/constructor/, payload.slice(0, 40))
        }
        assert.equal(await countUsers({ email: data.email }), 0)
        assert.equal(({} as any).isAdmin, undefined)
        assert.equal(({} as any).role, undefined)
      })

      it('returns 400 for a __proto__ payload on update and keeps the role', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const payload = `{"username":"${newUserData().username}","__proto__":{"role":"admin"}}`
        assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, headers: JSON_TYPE, payload }), 400, /__proto__/)
        const row = await app.db.kysely.selectFrom('users').select(['role', 'username']).where('id', '=', user.id).executeTakeFirstOrThrow()
        assert.deepEqual(row, { role: 'user', username: user.username })
      })

      it('never answers 5xx for a NUL character in any text field', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const responses = [
          await app.inject({ method: 'POST', url: '/users/login', payload: { email: `a\u0000${user.email}`, password: user.password } }),
          await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: `x\u0000${user.password}` } }),
          await signupWith(app, { username: `nul\u0000name` }),
          await signupWith(app, { email: `nul\u0000${newUserData().email}` }),
          await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: `nul\u0000${newUserData().email}` } })
        ]
        for (const response of responses) {
          assert.ok(response.statusCode >= 400 && response.statusCode < 500, `${response.statusCode} ${response.body}`)
          assert.equal(typeof json(response).detail, 'string')
        }
      })
    })

    describe('identity rules', () => {
      it('returns 400 for invalid email formats, with a message about the email', async () => {
        const { app } = suite()
        for (const email of ['not-an-email', 'a@', '@example.com', 'a b@example.com', 'a@@example.com', 'a@example..com', '']) {
          assertClientError(await signupWith(app, { email }), 400, /^email: /, email)
        }
        const user = await createUser(app)
        assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: 'nope' } }), 400, /^email: must be a valid email address$/)
      })

      it('returns 400 for usernames with control, zero-width or bidi-override characters', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const base = newUserData().username
        const bad = ['\u0007', '\n', '\t', '\u007F', '\u200B', '\u200D', '\uFEFF', '\u202E', '\u2066', '\u00AD']
        for (const ch of bad) {
          const username = `${base.slice(0, 4)}${ch}${base.slice(4)}`
          const label = `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`
          assertClientError(await signupWith(app, { username }), 400, /^username: must not contain control, zero-width or bidirectional-override characters$/, label)
          assertClientError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username } }), 400, /^username: /, label)
          assert.equal(await countUsers({ username }), 0, label)
        }
      })

      it('returns 400 for an empty, blank or padded username', async () => {
        const { app } = suite()
        assertClientError(await signupWith(app, { username: '' }), 400, /^username: /)
        assertClientError(await signupWith(app, { username: '   ' }), 400, /^username: /)
        assertClientError(await signupWith(app, { username: ' padded' }), 400, /^username: must not start or end with whitespace$/)
      })

      it('returns 400 for a 65-character username and accepts 64 characters', async () => {
        const { app } = suite()
        assertClientError(await signupWith(app, { username: 'b'.repeat(65) }), 400, /^username: must NOT have more than 64 characters$/)
        // Counted in characters, not bytes or UTF-16 units: 64 astral characters are 128 units.
        assertClientError(await signupWith(app, { username: '\u{1D4B6}'.repeat(65) }), 400, /^username: /)
        const ok = await signupWith(app, { username: `${newUserData().username}${'c'.repeat(64)}`.slice(0, 64) })
        assert.equal(ok.statusCode, 201, ok.body)
      })
    })

    describe('path ids', () => {
      const ids = ['abc', '0', '-1', '1.5', '99999999999999999999', '2147483648', 'null', '1;DROP TABLE users', '1e0', '0x1', ' 1', '+1', '']
      for (const role of ['user', 'admin'] as const) {
        it(`answers 400 or 404, never 5xx, for ids that are not positive integers in range (${role})`, async () => {
          const { app } = suite()
          const user = await createUser(app, { admin: role === 'admin' })
          for (const id of ids) {
            for (const method of ['GET', 'PUT', 'DELETE'] as const) {
              const response = await authed(app, user.token, {
                method, url: `/users/${encodeURIComponent(id)}`, payload: method === 'PUT' ? { username: newUserData().username } : undefined
              })
              const label = `${method} ${id}`
              assert.ok([400, 404].includes(response.statusCode), `${label}: ${response.statusCode} ${response.body}`)
              assert.match(json(response).detail, /user_id/, label)
            }
          }
          const users = await app.db.kysely.selectFrom('users').select('id').where('id', '=', user.id).execute()
          assert.equal(users.length, 1)
        })
      }

      it('answers a malformed or over-long path as JSON {"detail"} with the security headers', async () => {
        const { app } = suite()
        const user = await createUser(app)
        for (const url of ['/users/%', '/users/%E0%A4%A', `/users/${'9'.repeat(200)}`]) {
          const response = await authed(app, user.token, { method: 'GET', url })
          assert.equal(response.statusCode, 400, url)
          assert.deepEqual(Object.keys(json(response)), ['detail'], url)
          assert.match(json(response).detail as string, /malformed|too long/, url)
          assert.equal(response.headers['x-content-type-options'], 'nosniff', url)
        }
      })
    })
  })

  describe(`concurrent duplicate signups (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })

    async function race (bodies: Array<Record<string, string>>) {
      const { app } = suite()
      const responses = await Promise.all(bodies.map((payload) => app.inject({ method: 'POST', url: '/users/signup', payload })))
      const statuses = responses.map((r) => r.statusCode)
      assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses: ${statuses.join(',')}`)
      assert.equal(statuses.filter((s) => s === 400).length, bodies.length - 1, `statuses: ${statuses.join(',')}`)
      return responses
    }

    it('lets exactly one of 10 concurrent signups with the same username win; the rest get 400', async () => {
      const { app } = suite()
      const username = newUserData('race').username
      const responses = await race(Array.from({ length: 10 }, () => ({ ...newUserData(), username })))
      for (const response of responses.filter((r) => r.statusCode === 400)) {
        assert.deepEqual(json(response), { detail: 'Username already registered' })
      }
      const rows = await app.db.kysely.selectFrom('users').select('id').where('username_normalized', '=', username.toLowerCase()).execute()
      assert.equal(rows.length, 1)
      assert.equal(rows[0].id, json(responses.find((r) => r.statusCode === 201)!).user_id)
    })

    it('lets exactly one of 10 concurrent signups with the same email (in any case) win; the rest get 400', async () => {
      const { app } = suite()
      const email = newUserData('race').email
      const responses = await race(Array.from({ length: 10 }, (_, i) => ({ ...newUserData(), email: i % 2 === 0 ? email : email.toUpperCase() })))
      for (const response of responses.filter((r) => r.statusCode === 400)) {
        assert.deepEqual(json(response), { detail: 'Email already registered' })
      }
      const rows = await app.db.kysely.selectFrom('users').select('id').where('email_normalized', '=', email.toLowerCase()).execute()
      assert.equal(rows.length, 1)
    })
  })
}
