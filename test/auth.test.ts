import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createSigner } from 'fast-jwt'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import {
  authed, buildTestApp, createClock, createUser, DIALECTS, json, login, newUserData, signup, TEST_JWT_SECRET, useSuiteApp
} from './helpers.js'

const WRONG_SECRET = 'not-the-server-secret-0123456789abcdef0123'

function decodePart (part: string): any {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
}

function encodePart (value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

function decodeToken (token: string): { header: any, payload: any } {
  const [header, payload] = token.split('.')
  return { header: decodePart(header), payload: decodePart(payload) }
}

/** Signs arbitrary claims with HS256; `iat` and `exp` are taken as given (fast-jwt keeps them without expiresIn). */
function sign (claims: Record<string, unknown>, key = TEST_JWT_SECRET): string {
  return createSigner({ key, algorithm: 'HS256' })(claims)
}

function assertUnauthorized (response: LightMyRequestResponse, label = '') {
  assert.equal(response.statusCode, 401, `${label}: ${response.body}`)
  assert.deepEqual(Object.keys(json(response)), ['detail'], label)
  assert.match(String(response.headers['www-authenticate']), /^Bearer\b/, label)
}

const readSelf = (app: FastifyInstance, token: string, id: number) => authed(app, token, { method: 'GET', url: `/users/${id}` })

for (const dialect of DIALECTS) {
  describe(`auth (${dialect.name})`, { skip: dialect.skip }, () => {
    const suite = useSuiteApp({ dialect: dialect.name })
    const hashOf = async (id: number) =>
      (await suite().app.db.kysely.selectFrom('users').select('hashed_password').where('id', '=', id).executeTakeFirstOrThrow()).hashed_password
    const sessionsOf = (userId: number) =>
      suite().app.db.kysely.selectFrom('sessions').select(['id', 'revoked_at']).where('user_id', '=', userId).execute()

    describe('POST /users/login', () => {
      it('returns 200 with a bearer access token that expires in 900 seconds by default', async () => {
        const { app } = suite()
        const user = await signup(app)
        const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
        assert.equal(response.statusCode, 200, response.body)
        const body = json(response)
        assert.equal(typeof body.access_token, 'string')
        assert.equal(body.access_token.split('.').length, 3)
        assert.equal(body.token_type, 'bearer')
        assert.equal(body.expires_in, 900)
        assert.doesNotMatch(response.body, /hashed_password|\$argon2/)
        assert.equal((await readSelf(app, body.access_token, user.id)).statusCode, 200)
      })

      it('creates one session row per login', async () => {
        const { app } = suite()
        const user = await signup(app)
        assert.equal((await sessionsOf(user.id)).length, 0)
        const token = await login(app, user.email, user.password)
        const sessions = await sessionsOf(user.id)
        assert.equal(sessions.length, 1)
        assert.equal(sessions[0].revoked_at, null)
        assert.equal(decodeToken(token).payload.sid, sessions[0].id)
      })

      it('issues a token with sub, sid, iat, exp (iat + 900), iss and aud, signed HS256', async () => {
        const { app, config } = suite()
        const user = await createUser(app)
        const { header, payload } = decodeToken(user.token)
        assert.equal(header.alg, 'HS256')
        assert.equal(payload.sub, String(user.id))
        assert.equal(typeof payload.sid, 'string')
        assert.ok(payload.sid.length >= 16, 'session ids must not be guessable')
        assert.ok(Number.isInteger(payload.iat))
        assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60)
        assert.equal(payload.exp, payload.iat + 900)
        assert.equal(payload.iss, config.jwtIssuer)
        assert.equal(payload.aud, config.jwtAudience)
        assert.doesNotMatch(JSON.stringify(payload), /password|email|role/)
      })

      it('answers a wrong password and an unknown email with the identical 401', async () => {
        const { app } = suite()
        const user = await signup(app)
        const wrongPassword = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: 'not-the-password-1' } })
        const unknownEmail = await app.inject({ method: 'POST', url: '/users/login', payload: { email: `nobody-${user.email}`, password: user.password } })
        assertUnauthorized(wrongPassword, 'wrong password')
        assertUnauthorized(unknownEmail, 'unknown email')
        assert.equal(wrongPassword.body, unknownEmail.body)
        assert.deepEqual(json(wrongPassword), { detail: 'Incorrect email or password' })
        assert.equal(wrongPassword.headers['www-authenticate'], unknownEmail.headers['www-authenticate'])
        assert.equal(wrongPassword.headers['content-type'], unknownEmail.headers['content-type'])
        assert.equal((await sessionsOf(user.id)).length, 0)
      })

      it('lets a user log in with their email in another case', async () => {
        const { app } = suite()
        const data = newUserData()
        const user = await signup(app, { ...data, email: `Mixed.Case.${data.email}` })
        for (const email of [user.email, user.email.toLowerCase(), user.email.toUpperCase()]) {
          const token = await login(app, email, user.password)
          assert.equal((await readSelf(app, token, user.id)).statusCode, 200)
        }
      })

      it('stores new passwords as argon2id hashes (m=19456, t=2, p=1)', async () => {
        const { app } = suite()
        const user = await signup(app)
        assert.match(await hashOf(user.id), /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
      })

      it('honours ACCESS_TOKEN_TTL in expires_in and exp', async (t) => {
        const { app } = await buildTestApp(t, { dialect: dialect.name, env: { ACCESS_TOKEN_TTL: '2m' } })
        const user = await signup(app)
        const response = await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } })
        assert.equal(json(response).expires_in, 120)
        const { payload } = decodeToken(json(response).access_token)
        assert.equal(payload.exp - payload.iat, 120)
      })
    })

    describe('revocation', () => {
      it('a password change revokes the other sessions but keeps the current one', async () => {
        const { app } = suite()
        const user = await signup(app)
        const token1 = await login(app, user.email, user.password)
        const token2 = await login(app, user.email, user.password)
        const newPassword = `new-${user.password}`
        const response = await authed(app, token1, { method: 'PUT', url: `/users/${user.id}`, payload: { password: newPassword } })
        assert.equal(response.statusCode, 200, response.body)
        assertUnauthorized(await readSelf(app, token2, user.id), 'other session')
        assert.equal((await readSelf(app, token1, user.id)).statusCode, 200)
        const sessions = await sessionsOf(user.id)
        const sid1 = decodeToken(token1).payload.sid
        const sid2 = decodeToken(token2).payload.sid
        assert.equal(sessions.find((s) => s.id === sid1)?.revoked_at, null)
        assert.notEqual(sessions.find((s) => s.id === sid2)?.revoked_at, null)
      })

      it('after a password change the new password logs in and the old one does not', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const newPassword = `changed-${user.password}`
        assert.equal((await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: newPassword } })).statusCode, 200)
        assertUnauthorized(await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }), 'old password')
        const token = await login(app, user.email, newPassword)
        assert.equal((await readSelf(app, token, user.id)).statusCode, 200)
      })

      it('a username-only change revokes no session', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const other = await login(app, user.email, user.password)
        const response = await authed(app, user.token, { method: 'PUT', url: `/users/${user.id}`, payload: { username: newUserData().username } })
        assert.equal(response.statusCode, 200, response.body)
        assert.equal((await readSelf(app, other, user.id)).statusCode, 200)
      })

      it('an admin changing a user\'s password revokes all of that user\'s sessions', async () => {
        const { app } = suite()
        const [admin, user] = [await createUser(app, { admin: true }), await createUser(app)]
        const response = await authed(app, admin.token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: `admin-set-${user.password}` } })
        assert.equal(response.statusCode, 200, response.body)
        assertUnauthorized(await readSelf(app, user.token, user.id), 'user session')
        assert.equal((await readSelf(app, admin.token, admin.id)).statusCode, 200)
      })

      it('deleting a user revokes all their tokens at once', async () => {
        const { app } = suite()
        const user = await createUser(app)
        const other = await login(app, user.email, user.password)
        assert.equal((await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
        assertUnauthorized(await readSelf(app, user.token, user.id), 'deleting token')
        assertUnauthorized(await readSelf(app, other, user.id), 'other token')
        assert.equal((await sessionsOf(user.id)).length, 0)
        assertUnauthorized(await app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password } }), 'login after delete')
      })
    })

    describe('forged and malformed tokens', () => {
      /** A user, their live token and its claims: the material forgeries start from. */
      async function victim () {
        const { app } = suite()
        const user = await createUser(app)
        return { app, user, claims: decodeToken(user.token).payload }
      }

      it('accepts a token re-signed with the real key and the real claims (the forgery helpers work)', async () => {
        const { app, user, claims } = await victim()
        const token = sign(claims)
        assert.deepEqual(decodeToken(token).payload, claims)
        assert.equal((await readSelf(app, token, user.id)).statusCode, 200)
      })

      it('returns 401 for alg "none"', async () => {
        const { app, user, claims } = await victim()
        for (const alg of ['none', 'None', 'NONE']) {
          const token = `${encodePart({ alg, typ: 'JWT' })}.${encodePart(claims)}.`
          assertUnauthorized(await readSelf(app, token, user.id), alg)
        }
      })

      it('returns 401 for a token signed with another key', async () => {
        const { app, user, claims } = await victim()
        assertUnauthorized(await readSelf(app, sign(claims, WRONG_SECRET), user.id))
      })

      it('returns 401 for a token with another algorithm in its header (HS512 with the real key)', async () => {
        const { app, user, claims } = await victim()
        const token = createSigner({ key: TEST_JWT_SECRET, algorithm: 'HS512' })(claims)
        assertUnauthorized(await readSelf(app, token, user.id))
      })

      it('returns 401 for an expired token signed with the real key', async () => {
        const { app, user, claims } = await victim()
        const now = Math.floor(Date.now() / 1000)
        assertUnauthorized(await readSelf(app, sign({ ...claims, iat: now - 1000, exp: now - 100 }), user.id))
        assertUnauthorized(await readSelf(app, sign({ ...claims, iat: now - 900, exp: now }), user.id), 'exp = now')
      })

      it('returns 401 once 15 minutes have passed on the app clock, 200 just before', async (t) => {
        const clock = createClock(Date.now())
        const { app } = await buildTestApp(t, { dialect: dialect.name, overrides: { now: clock.now } })
        const user = await createUser(app)
        clock.advance(899_000)
        assert.equal((await readSelf(app, user.token, user.id)).statusCode, 200)
        clock.advance(1_000)
        assertUnauthorized(await readSelf(app, user.token, user.id))
      })

      it('returns 401 for a tampered sub, whether left unsigned or re-signed with another key', async () => {
        const { app, user, claims } = await victim()
        const other = await createUser(app)
        const [header, , signature] = user.token.split('.')
        const edited = `${header}.${encodePart({ ...claims, sub: String(other.id) })}.${signature}`
        assertUnauthorized(await readSelf(app, edited, other.id), 'edited payload')
        assertUnauthorized(await readSelf(app, sign({ ...claims, sub: String(other.id) }, WRONG_SECRET), other.id), 're-signed')
      })

      it('returns 401 for a validly signed token naming a session that does not exist', async () => {
        const { app, user, claims } = await victim()
        assertUnauthorized(await readSelf(app, sign({ ...claims, sid: 'no-such-session-0000000000' }), user.id))
      })

      it('returns 401 for a validly signed token whose sub is not the session\'s user', async () => {
        const { app, user, claims } = await victim()
        const other = await createUser(app)
        const token = sign({ ...claims, sub: String(other.id) })
        assertUnauthorized(await readSelf(app, token, other.id), 'as other')
        assertUnauthorized(await readSelf(app, token, user.id), 'as owner')
      })

      it('returns 401 for a validly signed token with a wrong issuer or audience', async () => {
        const { app, user, claims } = await victim()
        assertUnauthorized(await readSelf(app, sign({ ...claims, iss: 'someone-else' }), user.id), 'iss')
        assertUnauthorized(await readSelf(app, sign({ ...claims, aud: 'another-api' }), user.id), 'aud')
      })

      it('returns 401 for a validly signed token missing a required claim or with a non-numeric sub', async () => {
        const { app, user, claims } = await victim()
        for (const claim of ['sub', 'sid', 'exp', 'iss', 'aud']) {
          const { [claim]: _dropped, ...rest } = claims
          assertUnauthorized(await readSelf(app, sign(rest), user.id), `without ${claim}`)
        }
        assertUnauthorized(await readSelf(app, sign({ ...claims, sub: `${user.id} ` }), user.id), 'sub with a space')
        assertUnauthorized(await readSelf(app, sign({ ...claims, sub: user.id }), user.id), 'numeric sub')
      })

      it('returns 401 for garbage and for a token without the "Bearer " prefix', async () => {
        const { app, user } = await victim()
        const headers = ['Bearer x', 'Bearer ', 'Bearer a.b', `Basic ${Buffer.from('a:b').toString('base64')}`, user.token, `Token ${user.token}`, `Bearer${user.token}`]
        for (const authorization of headers) {
          assertUnauthorized(await app.inject({ method: 'GET', url: `/users/${user.id}`, headers: { authorization } }), authorization.slice(0, 12))
        }
        assert.equal((await readSelf(app, user.token, user.id)).statusCode, 200)
      })
    })
  })
}
