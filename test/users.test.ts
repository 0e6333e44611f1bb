import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import {
  authed, buildTestApp, createUser, DIALECTS, json, login, newUserData, signup, useSuiteApp
} from './helpers.js'

// The seed's fields, plus email_verified (added by the account-lifecycle work; clients ignore extra fields).
const PUBLIC_KEYS = ['created_at', 'email', 'email_verified', 'id', 'role', 'updated_at', 'username']

/** A well-formed token whose signature is wrong. */
function badToken (token: string): string {
  const [header, payload] = token.split('.')
  return `${header}.${payload}.${'A'.repeat(43)}`
}

/** An error response: JSON `{"detail": string}` and nothing else. */
function assertError (response: LightMyRequestResponse, status: number, detail?: RegExp | string) {
  assert.equal(response.statusCode, status, response.body)
  assert.match(String(response.headers['content-type']), /^application\/json/)
  const body = json(response)
  assert.deepEqual(Object.keys(body), ['detail'])
  assert.equal(typeof body.detail, 'string')
  if (typeof detail === 'string') assert.equal(body.detail, detail)
  else if (detail) assert.match(body.detail, detail)
}

function assertUnauthorized (response: LightMyRequestResponse) {
  assertError(response, 401)
  assert.match(String(response.headers['www-authenticate']), /^Bearer\b/)
}

for (const dialect of DIALECTS) {
  describe(`users (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    const userRow = (id: number) => suite().app.db.kysely.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
    const sessionCount = async (userId: number) =>
      (await suite().app.db.kysely.selectFrom('sessions').select('id').where('user_id', '=', userId).execute()).length

    describe('POST /users/signup', () => {
      it('returns 201 with exactly {message, user_id} and stores the account as given', async () => {
        const { app } = suite()
        const data = newUserData('Signup')
        const response = await app.inject({ method: 'POST', url: '/users/signup', payload: data })
        assert.equal(response.statusCode, 201, response.body)
        const body = json(response)
        assert.deepEqual(Object.keys(body).sort(), ['message', 'user_id'])
        assert.equal(body.message, 'User created successfully')
        assert.ok(Number.isInteger(body.user_id) && body.user_id > 0)
        const row = await userRow(body.user_id)
        assert.ok(row)
        assert.equal(row.username, data.username)
        assert.equal(row.email, data.email)
        assert.equal(row.username_normalized, data.username.toLowerCase())
        assert.equal(row.role, 'user')
        assert.match(row.hashed_password, /^\$argon2id\$/)
      })

      it('returns 400 when the username is taken, ignoring case, and creates nothing', async () => {
        const { app } = suite()
        const first = await signup(app, newUserData('taken'))
        const response = await app.inject({
          method: 'POST',
          url: '/users/signup',
          payload: { ...newUserData(), username: first.username.toUpperCase() }
        })
        assertError(response, 400, 'Username already registered')
        const rows = await app.db.kysely.selectFrom('users').select('id')
          .where('username_normalized', '=', first.username.toLowerCase()).execute()
        assert.equal(rows.length, 1)
      })

      it('returns 400 when the username is taken in its NFKC form (fullwidth "Ｒｏｈｉｔ" vs "rohit")', async () => {
        const { app } = suite()
        // A suffix keeps the name unique within the shared database; it is written fullwidth too.
        const suffix = String(Date.now() % 100000)
        const fullwidth = (text: string) => [...text].map((ch) => String.fromCodePoint(ch.codePointAt(0)! + 0xFEE0)).join('')
        const taken = await signup(app, { ...newUserData(), username: `rohit${suffix}` })
        const response = await app.inject({
          method: 'POST', url: '/users/signup', payload: { ...newUserData(), username: `Ｒｏｈｉｔ${fullwidth(suffix)}` }
        })
        assertError(response, 400, 'Username already registered')
        const rows = await app.db.kysely.selectFrom('users').select('id').where('username_normalized', '=', taken.username).execute()
        assert.equal(rows.length, 1)
      })

      it('returns 400 when the email is taken, ignoring case', async () => {
        const { app } = suite()
        const first = await signup(app, newUserData('mail'))
        const response = await app.inject({
          method: 'POST',
          url: '/users/signup',
          payload: { ...newUserData(), email: first.email.toUpperCase() }
        })
        assertError(response, 400, 'Email already registered')
        const rows = await app.db.kysely.selectFrom('users').select('id')
          .where('email_normalized', '=', first.email.toLowerCase()).execute()
        assert.equal(rows.length, 1)
      })

      it('ignores role and id in the signup body: the account is a plain user with a fresh id', async () => {
        const { app } = suite()
        const response = await app.inject({
          method: 'POST', url: '/users/signup', payload: { ...newUserData(), role: 'admin', id: 424242 }
        })
        assert.equal(response.statusCode, 201, response.body)
        const id = json(response).user_id
        assert.notEqual(id, 424242)
        assert.equal((await userRow(id))?.role, 'user')
        assert.equal(await userRow(424242), undefined)
      })

      it('returns 400 when the password breaks the policy (too short, same as the username)', async () => {
        const { app } = suite()
        const data = newUserData()
        assertError(await app.inject({ method: 'POST', url: '/users/signup', payload: { ...data, password: 'Ab3$xyz' } }),
          400, /password: must be at least 8 characters/)
        assertError(await app.inject({ method: 'POST', url: '/users/signup', payload: { ...data, password: data.username } }),
          400, /password: must not be the same as your username or email/)
        const rows = await app.db.kysely.selectFrom('users').select('id').where('email_normalized', '=', data.email).execute()
        assert.equal(rows.length, 0)
      })
    })

    describe('GET /users/{user_id}', () => {
      it('returns 200 with the public fields when a user reads their own account', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const response = await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
        assert.equal(response.statusCode, 200, response.body)
        const body = json(response)
        assert.deepEqual(Object.keys(body).sort(), PUBLIC_KEYS)
        assert.equal(body.id, user.id)
        assert.equal(body.username, user.username)
        assert.equal(body.email, user.email)
        assert.equal(body.role, 'user')
        assert.ok(!Number.isNaN(Date.parse(body.created_at)))
        assert.ok(!Number.isNaN(Date.parse(body.updated_at)))
        assert.doesNotMatch(response.body, /hashed_password|\$argon2/)
      })

      it('returns 403 when a user reads another existing user', async () => {
        const { app } = suite()
        const [user, other] = [await createUser(app), await createUser(app)]
        assertError(await authed(app, user.token, { method: 'GET', url: `/users/${other.id}` }), 403)
      })

      it('returns 403 (not 404) when a user reads an id that does not exist', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertError(await authed(app, user.token, { method: 'GET', url: '/users/2000000000' }), 403)
      })

      it('returns 200 when an admin reads another user', async () => {
        const { app } = suite()
        const [admin, other] = [await createUser(app, { admin: true }), await createUser(app)]
        const response = await authed(app, admin.token, { method: 'GET', url: `/users/${other.id}` })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal(json(response).id, other.id)
        assert.equal(json(response).email, other.email)
        assert.equal(json(response).hashed_password, undefined)
      })

      it('returns 404 when an admin reads an id that does not exist', async () => {
        const { app } = suite()
        const admin = await createUser(app, { admin: true })
        assertError(await authed(app, admin.token, { method: 'GET', url: '/users/2000000000' }), 404, 'User not found')
      })

      it('returns 401 with WWW-Authenticate: Bearer without a token', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertUnauthorized(await app.inject({ method: 'GET', url: `/users/${user.id}` }))
      })

      it('returns 401 with a token whose signature is wrong', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertUnauthorized(await authed(app, badToken(user.token), { method: 'GET', url: `/users/${user.id}` }))
      })
    })

    describe('PUT /users/{user_id}', () => {
      it('returns 200 with the updated user when a user changes their username and email', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const next = newUserData('Renamed')
        const response = await authed(app, user.token, {
          method: 'PUT', url: `/users/${user.id}`, payload: { username: next.username, email: next.email }
        })
        assert.equal(response.statusCode, 200, response.body)
        const body = json(response)
        assert.deepEqual(Object.keys(body).sort(), PUBLIC_KEYS)
        assert.equal(body.username, next.username)
        assert.equal(body.email, next.email)
        assert.doesNotMatch(response.body, /hashed_password|\$argon2/)
        const row = await userRow(user.id)
        assert.equal(row?.username, next.username)
        assert.equal(row?.username_normalized, next.username.toLowerCase())
        assert.equal(row?.email, next.email)
        assert.equal(row?.email_normalized, next.email.toLowerCase())
        assert.ok(Date.parse(row!.updated_at) >= Date.parse(row!.created_at))
      })

      it('lets a user change the case of their own username (no conflict with themselves)', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const response = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: user.username.toUpperCase() } })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal((await userRow(user.id))?.username, user.username.toUpperCase())
      })

      it('returns 400 when the body has none of username, email, password', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: {} }),
          400, /at least one of username, email, password/)
      })

      it('ignores role and id in the body and never applies them', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const next = newUserData()
        const response = await authed(app, user.token, {
          method: 'PUT', url: `/users/${user.id}`, payload: { username: next.username, role: 'admin', id: user.id + 1000 }
        })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal(json(response).role, 'user')
        assert.equal(json(response).id, user.id)
        const row = await userRow(user.id)
        assert.equal(row?.role, 'user')
        assert.equal(row?.username, next.username)
        assert.equal(await userRow(user.id + 1000), undefined)
      })

      it('returns 400 for a body with only role (it is dropped, leaving nothing to change) and keeps the role', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { role: 'admin' } }), 400)
        assert.equal((await userRow(user.id))?.role, 'user')
        const read = await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` })
        assert.equal(json(read).role, 'user')
      })

      it('ignores unknown fields', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const next = newUserData()
        const response = await authed(app, user.token, {
          method: 'PUT', url: `/users/${user.id}`, payload: { email: next.email, nickname: 'x', hashed_password: 'plain' }
        })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal(json(response).nickname, undefined)
        const row = await userRow(user.id)
        assert.equal(row?.email, next.email)
        assert.match(row!.hashed_password, /^\$argon2id\$/)
      })

      it('returns 400 when the username is taken by another user (ignoring case)', async () => {
        const { app } = suite()
        const [user, other] = [await createUser(app), await createUser(app)]
        assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: other.username.toUpperCase() } }),
          400, 'Username already registered')
        assert.equal((await userRow(user.id))?.username, user.username)
      })

      it('returns 400 when the email is taken by another user (ignoring case)', async () => {
        const { app } = suite()
        const [user, other] = [await createUser(app), await createUser(app)]
        assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { email: other.email.toUpperCase() } }),
          400, 'Email already registered')
        assert.equal((await userRow(user.id))?.email, user.email)
      })

      it('enforces the password policy (min 8, max 256, not the username or email) and keeps the old hash', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const before = (await userRow(user.id))!.hashed_password
        const cases: Array<[string, RegExp]> = [
          ['Ab3$xyz', /password: must be at least 8 characters/],
          ['Qz7!'.repeat(64) + 'k', /password: must be at most 256 characters/],
          [user.username, /password: must not be the same as your username or email/],
          [user.email.toUpperCase(), /password: must not be the same as your username or email/]
        ]
        for (const [password, detail] of cases) {
          assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { password } }), 400, detail)
        }
        assert.equal((await userRow(user.id))!.hashed_password, before)
      })

      it('checks the password against the new username when both change together', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const next = newUserData()
        assertError(await authed(app, user.token, {
          method: 'PUT', url: `/users/${user.id}`, payload: { username: next.username, password: next.username }
        }), 400, /password: must not be the same/)
        assert.equal((await userRow(user.id))?.username, user.username)
      })

      it('accepts passwords of exactly 8 and exactly 256 characters', async () => {
        const { app } = suite()
        const user = await createUser(app)
        for (const password of ['Zq8#mw2P', 'Qz7!'.repeat(64)]) {
          const before = (await userRow(user.id))!.hashed_password
          const response = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { password } })
          assert.equal(response.statusCode, 200, response.body)
          assert.notEqual((await userRow(user.id))!.hashed_password, before)
          await login(app, user.email, password)
        }
      })

      it('returns 403 when a user updates another user, and changes nothing', async () => {
        const { app } = suite()
        const [user, other] = [await createUser(app), await createUser(app)]
        assertError(await authed(app, user.token, { method: 'PUT', url: `/users/${other.id}`, payload: { username: newUserData().username } }), 403)
        assert.equal((await userRow(other.id))?.username, other.username)
      })

      it('returns 403 (not 404) when a user updates an id that does not exist', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertError(await authed(app, user.token, { method: 'PUT', url: '/users/2000000000', payload: { username: newUserData().username } }), 403)
      })

      it('returns 200 when an admin updates another user, and applies it', async () => {
        const { app } = suite()
        const [admin, other] = [await createUser(app, { admin: true }), await createUser(app)]
        const username = newUserData().username
        const response = await authed(app, admin.token, { method: 'PUT', url: `/users/${other.id}`, payload: { username } })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal(json(response).id, other.id)
        assert.equal(json(response).username, username)
        assert.equal((await userRow(other.id))?.username, username)
        assert.equal((await userRow(admin.id))?.username, admin.username)
      })

      it('returns 404 when an admin updates an id that does not exist', async () => {
        const { app } = suite()
        const admin = await createUser(app, { admin: true })
        assertError(await authed(app, admin.token, { method: 'PUT', url: '/users/2000000000', payload: { username: newUserData().username } }),
          404, 'User not found')
      })

      it('returns 401 without a token or with a bad token, and changes nothing', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const payload = { username: newUserData().username }
        assertUnauthorized(await app.inject({ method: 'PUT', url: `/users/${user.id}`, payload }))
        assertUnauthorized(await authed(app, badToken(user.token), { method: 'PUT', url: `/users/${user.id}`, payload }))
        assert.equal((await userRow(user.id))?.username, user.username)
      })
    })

    describe('DELETE /users/{user_id}', () => {
      it('returns 204 with an empty body and removes the user and their sessions', async () => {
        const { app } = suite()
        const user = await createUser(app)
        await login(app, user.email, user.password)
        assert.equal(await sessionCount(user.id), 2)
        const response = await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })
        assert.equal(response.statusCode, 204)
        assert.equal(response.body, '')
        assert.equal(await userRow(user.id), undefined)
        assert.equal(await sessionCount(user.id), 0)
      })

      it('returns 403 when a user deletes another existing user, and keeps them', async () => {
        const { app } = suite()
        const [user, other] = [await createUser(app), await createUser(app)]
        assertError(await authed(app, user.token, { method: 'DELETE', url: `/users/${other.id}` }), 403)
        assert.ok(await userRow(other.id))
      })

      it('returns 403 (not 404) when a user deletes an id that does not exist', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertError(await authed(app, user.token, { method: 'DELETE', url: '/users/2000000000' }), 403)
      })

      it('returns 204 when an admin deletes another user, and removes them', async () => {
        const { app } = suite()
        const [admin, other] = [await createUser(app, { admin: true }), await createUser(app)]
        const response = await authed(app, admin.token, { method: 'DELETE', url: `/users/${other.id}` })
        assert.equal(response.statusCode, 204)
        assert.equal(response.body, '')
        assert.equal(await userRow(other.id), undefined)
        assert.equal(await sessionCount(other.id), 0)
        assertUnauthorized(await authed(app, other.token, { method: 'GET', url: `/users/${other.id}` }))
        assert.ok(await userRow(admin.id))
      })

      it('returns 404 when an admin deletes an id that does not exist', async () => {
        const { app } = suite()
        const admin = await createUser(app, { admin: true })
        assertError(await authed(app, admin.token, { method: 'DELETE', url: '/users/2000000000' }), 404, 'User not found')
      })

      it('returns 401 without a token or with a bad token, and keeps the user', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assertUnauthorized(await app.inject({ method: 'DELETE', url: `/users/${user.id}` }))
        assertUnauthorized(await authed(app, badToken(user.token), { method: 'DELETE', url: `/users/${user.id}` }))
        assert.ok(await userRow(user.id))
      })

      it('returns 401 when the deleted user uses their token again', async () => {
        const { app } = suite()
        const user = await createUser(app)
        assert.equal((await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
        assertUnauthorized(await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` }))
        assertUnauthorized(await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` }))
      })
    })

    describe('headers', () => {
      it('sends nosniff and no X-Powered-By or Server banner on every kind of response', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const responses = [
          await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() }),
          await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }),
          await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'wrong-password-1' } }),
          await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` }),
          await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: {} }),
          await authed(app, user.token, { method: 'GET', url: '/users/2000000000' }),
          await app.inject({ method: 'GET', url: `/users/${user.id}` }),
          await app.inject({ method: 'GET', url: '/no/such/route' }),
          await app.inject({ method: 'POST', url: '/users/signup', headers: { 'content-type': 'text/plain' }, payload: 'hi' }),
          await app.inject({ method: 'GET', url: '/openapi.json' })
        ]
        assert.deepEqual(responses.map((r) => r.statusCode), [201, 200, 401, 200, 400, 403, 401, 404, 415, 200])
        for (const response of responses) {
          const label = `${response.statusCode} ${response.raw.req.method} ${response.raw.req.url}`
          assert.equal(response.headers['x-content-type-options'], 'nosniff', label)
          assert.equal(response.headers['x-powered-by'], undefined, label)
          assert.equal(response.headers.server, undefined, label)
        }
      })

      it('sends Cache-Control: no-store on responses carrying tokens or user data', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const responses = [
          await app.inject({ method: 'POST', url: '/users/signup', payload: newUserData() }),
          await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }),
          await authed(app, user.token, { method: 'GET', url: `/users/${user.id}` }),
          await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: newUserData().username } }),
          await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })
        ]
        assert.deepEqual(responses.map((r) => r.statusCode), [201, 200, 200, 200, 204])
        for (const response of responses) {
          assert.match(String(response.headers['cache-control']), /\bno-store\b/, `${response.raw.req.method} ${response.raw.req.url}`)
        }
      })

      it('answers errors as JSON {"detail": string}, 401s with WWW-Authenticate: Bearer', async () => {
        const { app } = suite()
        assertUnauthorized(await app.inject({ method: 'GET', url: '/users/1' }))
        assertUnauthorized(await app.inject({ method: 'GET', url: '/users/1', headers: { authorization: 'Bearer x' } }))
        assertUnauthorized(await app.inject({ method: 'POST', url: '/users/login', payload: { email: 'nobody@example.com', password: 'whatever-pass' } }))
        assertError(await app.inject({ method: 'GET', url: '/nowhere' }), 404)
        assertError(await app.inject({ method: 'POST', url: '/users/signup', payload: { username: 'x' } }), 400, /email/)
      })
    })
  })

  describe(`user ids (${dialect.name})`, { skip: dialect.skip }, () => {
    it('never reuses the id of a deleted user, so the old token cannot reach the new account', async (t) => {
      const { app } = await buildTestApp(t, { dialect: dialect.name })
      const a = await createUser(app)
      assert.equal((await authed(app, a.token, { method: 'DELETE', url: `/users/${a.id}` })).statusCode, 204)
      const b = await signup(app)
      assert.ok(b.id > a.id, `new id ${b.id} must be greater than the deleted id ${a.id}`)
      assertUnauthorized(await authed(app, a.token, { method: 'GET', url: `/users/${b.id}` }))
      assertUnauthorized(await authed(app, a.token, { method: 'GET', url: `/users/${a.id}` }))
    })
  })
}
