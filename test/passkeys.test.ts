import assert from 'node:assert/strict'
import { describe, it, type TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../src/config.js'
import { loadTemplates } from '../src/email/templates.js'
import { authed, buildTestApp, createClock, createUser, DIALECTS, json, type DialectName } from './helpers.js'
import { challenge, createMfaUser, decodeClaims, mfaLogin, passwordLogin } from './mfa-support.js'
import { SoftAuthenticator, type Algorithm } from './webauthn-authenticator.js'

// Passkeys over HTTP on a real database: registration and login ceremonies answered by a
// software authenticator (test/webauthn-authenticator.ts, WebAuthn's formats written for the
// tests), at times the tests set through the app's clock. The relying party is the default
// configuration's: RP ID localhost, origin http://localhost:8000 (PUBLIC_URL http://127.0.0.1:8000).

const START = Date.parse('2026-03-02T09:00:10Z')
const RP_ID = 'localhost'
const ORIGIN = 'http://localhost:8000'

async function passkeyApp (t: TestContext, dialect: DialectName, env: Record<string, string> = {}) {
  const clock = createClock(START)
  const { app, databaseUrl } = await buildTestApp(t, { dialect, env, overrides: { now: clock.now } })
  return { app, clock, databaseUrl }
}

const db = (app: FastifyInstance) => app.db.kysely
const passkeyRows = (app: FastifyInstance, userId: number) => db(app).selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('id').execute()
const sessionsOf = (app: FastifyInstance, userId: number) =>
  db(app).selectFrom('sessions').select(['id', 'aal', 'amr', 'passkey_id', 'revoked_at']).where('user_id', '=', userId).orderBy('created_at').execute()
const outboxPurposes = async (app: FastifyInstance, userId: number) =>
  (await db(app).selectFrom('email_outbox').select('purpose').where('user_id', '=', userId).orderBy('id').execute()).map((row) => row.purpose)
const auditOf = (app: FastifyInstance, userId: number, type: string) =>
  db(app).selectFrom('audit_events').select(['type', 'outcome', 'actor_id', 'detail']).where('user_id', '=', userId).where('type', '=', type).orderBy('id').execute()
const challengeCount = async (app: FastifyInstance) => Number((await db(app).selectFrom('webauthn_challenges').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n)
const mfaEnabled = async (app: FastifyInstance, userId: number) => (await db(app).selectFrom('users').select('mfa_enabled').where('id', '=', userId).executeTakeFirstOrThrow()).mfa_enabled

async function registrationOptions (app: FastifyInstance, token: string, headers: Record<string, string> = {}) {
  const response = await authed(app, token, { method: 'POST', url: '/users/me/passkeys/options', headers })
  assert.equal(response.statusCode, 200, response.body)
  return json(response)
}

function addPasskey (app: FastifyInstance, token: string, payload: Record<string, unknown>) {
  return authed(app, token, { method: 'POST', url: '/users/me/passkeys', payload })
}

async function loginOptions (app: FastifyInstance, headers: Record<string, string> = {}, remoteAddress?: string) {
  const response = await app.inject({ method: 'POST', url: '/users/login/passkey/options', headers, remoteAddress })
  assert.equal(response.statusCode, 200, response.body)
  return json(response)
}

function passkeyLogin (app: FastifyInstance, response: unknown, remoteAddress?: string) {
  return app.inject({ method: 'POST', url: '/users/login/passkey', payload: { response }, remoteAddress })
}

/** A user (password login, aal1) who then registers one passkey with `authenticator`. */
async function createPasskeyUser (app: FastifyInstance, authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }), options: { alg?: Algorithm } = {}) {
  const user = await createUser(app)
  const registered = authenticator.register(await registrationOptions(app, user.token), { alg: options.alg })
  const created = await addPasskey(app, user.token, { response: registered.response, name: 'Laptop' })
  assert.equal(created.statusCode, 201, created.body)
  return { ...user, authenticator, credential: registered.credential, passkey: json(created) }
}

/** Logs in with the authenticator's last passkey; the whole response. */
async function loginWith (app: FastifyInstance, authenticator: SoftAuthenticator, overrides: Parameters<SoftAuthenticator['authenticate']>[1] = {}) {
  return passkeyLogin(app, authenticator.authenticate(await loginOptions(app), overrides))
}

for (const dialect of DIALECTS) {
  describe(`adding a passkey (${dialect.name})`, { skip: dialect.skip }, () => {
    it('gives options from configuration: RP ID, name, pinned algorithms, discoverable and verified, the email as user name', async (t) => {
      const { app } = await passkeyApp(t, dialect.name, { APP_NAME: 'Example Accounts' })
      const user = await createUser(app)
      const options = await registrationOptions(app, user.token)
      assert.deepEqual(options.rp, { name: 'Example Accounts', id: 'localhost' })
      assert.deepEqual(options.pubKeyCredParams, [{ alg: -8, type: 'public-key' }, { alg: -7, type: 'public-key' }, { alg: -257, type: 'public-key' }])
      assert.equal(options.authenticatorSelection.residentKey, 'required')
      assert.equal(options.authenticatorSelection.userVerification, 'required')
      assert.equal(options.user.name, user.email)
      assert.equal(options.user.displayName, user.username)
      assert.equal(Buffer.from(options.user.id, 'base64url').length, 32, 'a random user handle, no personal data')
      assert.match(options.challenge, /^[A-Za-z0-9_-]{43}$/)
      assert.deepEqual(options.excludeCredentials, [])
      assert.equal(options.attestation, 'none')
      const stored = await db(app).selectFrom('webauthn_challenges').selectAll().execute()
      assert.equal(stored.length, 1)
      assert.equal(stored[0].ceremony, 'registration')
      assert.equal(stored[0].user_id, user.id)
      assert.notEqual(stored[0].challenge_hash, options.challenge, 'only a hash of the challenge is stored')
      assert.equal(stored[0].expires_at, new Date(START + 5 * 60_000).toISOString())
    })

    it('registers the first passkey as a second factor: 201 with recovery codes, this session aal2, the others ended, a notice', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createUser(app)
      const otherDevice = json(await passwordLogin(app, user)).access_token
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const { response } = authenticator.register(await registrationOptions(app, user.token))
      const created = await addPasskey(app, user.token, { response, name: '  Work laptop ' })
      assert.equal(created.statusCode, 201, created.body)
      const body = json(created)
      assert.deepEqual(Object.keys(body).sort(), ['created_at', 'id', 'name', 'recovery_codes'])
      assert.equal(body.name, 'Work laptop')
      assert.equal(body.created_at, new Date(START).toISOString())
      assert.equal(body.recovery_codes.length, 10)

      const [row] = await passkeyRows(app, user.id)
      assert.equal(row.id, body.id)
      assert.equal(row.credential_id, response.id)
      assert.equal(row.counter, 0)
      assert.deepEqual(JSON.parse(row.transports), ['internal', 'hybrid'])
      assert.equal(row.device_type, 'singleDevice')
      assert.equal(row.backed_up, 0)
      assert.equal(row.aaguid, [authenticator.aaguid.subarray(0, 4), authenticator.aaguid.subarray(4, 6), authenticator.aaguid.subarray(6, 8), authenticator.aaguid.subarray(8, 10), authenticator.aaguid.subarray(10)].map((part) => part.toString('hex')).join('-'))
      assert.equal(row.user_handle, authenticator.credentials[0].userHandle)
      assert.ok(Buffer.from(row.public_key, 'base64url').length > 60, 'the COSE public key')
      assert.equal(row.last_used_at, null)
      assert.equal(await challengeCount(app), 0, 'the challenge is used up')

      assert.equal(await mfaEnabled(app, user.id), 1)
      const sessions = await sessionsOf(app, user.id)
      const current = sessions.find((session) => session.id === decodeClaims(user.token).sid)!
      assert.equal(current.aal, 'aal2')
      assert.equal(current.passkey_id, body.id)
      assert.deepEqual(JSON.parse(current.amr).map((entry: { method: string }) => entry.method), ['pwd', 'webauthn'])
      assert.equal((await authed(app, otherDevice, { method: 'GET', url: '/users/me' })).statusCode, 401, 'the other session ended')
      assert.deepEqual(json(await authed(app, user.token, { method: 'GET', url: '/users/me/mfa' })), { totp: false, recovery_codes_left: 10, passkeys: 1 })
      assert.ok((await outboxPurposes(app, user.id)).includes('passkey_added'))
      const [event] = await auditOf(app, user.id, 'passkey_added')
      assert.equal(event.actor_id, user.id)
      assert.equal(JSON.parse(event.detail!).mfa_turned_on, true)

      // The password alone no longer logs in: the passkey completes it (or a recovery code).
      const login = await passwordLogin(app, user)
      assert.equal(login.statusCode, 403)
      assert.deepEqual(json(login).methods, ['recovery_code', 'passkey'])
    })

    it('adds a passkey to an account with TOTP from an aal2 session: no new codes, no session ended', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createMfaUser(app)
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const created = await addPasskey(app, user.token, { response: authenticator.register(await registrationOptions(app, user.token)).response })
      assert.equal(created.statusCode, 201, created.body)
      assert.deepEqual(Object.keys(json(created)).sort(), ['created_at', 'id', 'name'])
      assert.equal(json(created).name, 'Passkey added 2026-03-02')
      assert.equal((await sessionsOf(app, user.id)).filter((session) => session.revoked_at === null).length, 1)
      assert.deepEqual(json(await passwordLogin(app, user)).methods, ['totp', 'recovery_code', 'passkey'])
    })

    it('needs a recent login and, when the account has a second factor, an aal2 session', async (t) => {
      const { app, clock } = await passkeyApp(t, dialect.name)
      const plain = await createUser(app)
      const pair = json(await passwordLogin(app, plain))
      clock.advance(16 * 60_000)
      // A refreshed access token, but the login itself is older than REAUTH_WINDOW.
      const refreshed = json(await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } }))
      const stale = await authed(app, refreshed.access_token, { method: 'POST', url: '/users/me/passkeys/options' })
      assert.equal(stale.statusCode, 403)
      assert.equal(json(stale).detail, 'Recent login required: log in again to add a passkey')

      const user = await createMfaUser(app)
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const options = await registrationOptions(app, user.token)
      // The session drops to aal1 (a password login that raced TOTP's confirmation elsewhere).
      await db(app).updateTable('sessions').set({ aal: 'aal1' }).where('id', '=', decodeClaims(user.token).sid).execute()
      const needsSecond = { detail: 'This action needs a second factor' }
      const refusedOptions = await authed(app, user.token, { method: 'POST', url: '/users/me/passkeys/options' })
      assert.equal(refusedOptions.statusCode, 403)
      assert.deepEqual(json(refusedOptions), needsSecond)
      const refusedAdd = await addPasskey(app, user.token, { response: authenticator.register(options).response })
      assert.equal(refusedAdd.statusCode, 403)
      assert.deepEqual(json(refusedAdd), needsSecond)
      assert.equal((await passkeyRows(app, user.id)).length, 0)
    })

    it('refuses a passkey that did not verify the user, and one with an algorithm outside EdDSA, ES256, RS256', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createUser(app)
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const unverified = await addPasskey(app, user.token, { response: authenticator.register(await registrationOptions(app, user.token), { userVerified: false }).response })
      assert.equal(unverified.statusCode, 400)
      assert.match(json(unverified).detail, /^The passkey could not be registered: User verification was required/)
      const es384 = await addPasskey(app, user.token, { response: authenticator.register(await registrationOptions(app, user.token), { alg: -35 }).response })
      assert.equal(es384.statusCode, 400)
      assert.match(json(es384).detail, /Unexpected public key alg "-35", expected one of "-8, -7, -257"/)
      assert.equal((await passkeyRows(app, user.id)).length, 0)
      assert.equal(await mfaEnabled(app, user.id), 0)
      for (const alg of [-8, -7, -257] as const) {
        const own = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
        const passkeyUser = await createPasskeyUser(app, own, { alg })
        const login = await loginWith(app, own)
        assert.equal(login.statusCode, 200, `alg ${alg}: ${login.body}`)
        assert.equal(decodeClaims(json(login).access_token).sub, String(passkeyUser.id))
      }
    })

    it('refuses the same passkey twice, and lists the account\'s passkeys for the authenticator to exclude', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const options = await registrationOptions(app, user.token)
      assert.deepEqual(options.excludeCredentials, [{ id: user.credential.id, type: 'public-key', transports: ['internal', 'hybrid'] }])
      assert.equal(options.user.id, user.credential.userHandle, 'one user handle per account')
      // A response that claims another credential's id than the one it attests.
      const again = user.authenticator.register(options)
      const claimed = await addPasskey(app, user.token, { response: { ...again.response, id: user.credential.id, rawId: user.credential.id } })
      assert.equal(claimed.statusCode, 400)
      assert.match(json(claimed).detail, /the response's id is not the credential it attests/)
      // An authenticator attesting a credential id another account registered (crafted: real ones are random).
      const other = await createUser(app)
      const duplicate = await addPasskey(app, other.token, { response: new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }).register(await registrationOptions(app, other.token), { credentialId: user.credential.id }).response })
      assert.equal(duplicate.statusCode, 409)
      assert.deepEqual(json(duplicate), { detail: 'This passkey is already registered' })
      const sameId = await db(app).selectFrom('passkeys').select('user_id').where('credential_id', '=', user.credential.id).execute()
      assert.deepEqual(sameId, [{ user_id: user.id }])
      assert.equal(await mfaEnabled(app, other.id), 0, 'nothing of the refused passkey stays')
    })

    it('answers 400 for a malformed body or name', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createUser(app)
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const { response } = authenticator.register(await registrationOptions(app, user.token))
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{}, /^response: is required$/],
        [{ response: { ...response, type: 'password' } }, /response\.type/],
        [{ response: { ...response, response: { ...response.response, clientDataJSON: 'bm90IGpzb24' } } }, /clientDataJSON: must be the base64url JSON/],
        [{ response, name: 'line\nbreak' }, /^name: must match pattern/],
        [{ response, name: 'x'.repeat(65) }, /^name: must NOT have more than 64 characters$/]
      ]
      for (const [payload, detail] of cases) {
        const refused = await addPasskey(app, user.token, payload)
        assert.equal(refused.statusCode, 400, refused.body)
        assert.match(json(refused).detail, detail)
      }
      assert.equal((await passkeyRows(app, user.id)).length, 0)
    })

    it('lists the passkeys, marking the one this session signed in with', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const second = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, synced: true })
      const added = await addPasskey(app, user.token, { response: second.register(await registrationOptions(app, user.token)).response, name: 'Phone' })
      assert.equal(added.statusCode, 201, added.body)
      const viaPhone = json(await loginWith(app, second)).access_token
      const list = json(await authed(app, viaPhone, { method: 'GET', url: '/users/me/passkeys' }))
      assert.deepEqual(list.map((passkey: any) => [passkey.name, passkey.current, passkey.device_type, passkey.backed_up]), [
        ['Laptop', false, 'singleDevice', false],
        ['Phone', true, 'multiDevice', true]
      ])
      assert.deepEqual(Object.keys(list[0]).sort(), ['aaguid', 'backed_up', 'created_at', 'current', 'device_type', 'id', 'last_used_at', 'name', 'transports'])
      assert.equal(list[1].last_used_at, new Date(START).toISOString())
      assert.ok(!JSON.stringify(list).includes(user.credential.id), 'no credential id or key in the list')
      assert.equal(json(await authed(app, user.token, { method: 'GET', url: '/users/me/passkeys' }))[0].current, true, 'the registering session is marked with the passkey that raised it')
    })
  })

  describe(`ceremony challenges (${dialect.name})`, { skip: dialect.skip }, () => {
    it('work once: a registration or login response presented again is refused', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createUser(app)
      const authenticator = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const { response } = authenticator.register(await registrationOptions(app, user.token))
      assert.equal((await addPasskey(app, user.token, { response })).statusCode, 201)
      const replayed = await addPasskey(app, user.token, { response, name: 'again' })
      assert.equal(replayed.statusCode, 400)
      assert.deepEqual(json(replayed), { detail: 'Invalid or expired passkey challenge: start adding the passkey again' })

      const assertion = authenticator.authenticate(await loginOptions(app))
      assert.equal((await passkeyLogin(app, assertion)).statusCode, 200)
      const replay = await passkeyLogin(app, assertion)
      assert.equal(replay.statusCode, 401)
      assert.deepEqual(json(replay), { detail: 'Invalid or expired passkey challenge: start the sign-in again' })
      assert.equal(replay.headers['www-authenticate'], 'Bearer')
    })

    it('are used up before the response is verified: after a refused response, a right one to the same challenge fails too', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const options = await loginOptions(app)
      const wrongOrigin = await passkeyLogin(app, user.authenticator.authenticate(options, { origin: 'http://localhost:9999' }))
      assert.equal(wrongOrigin.statusCode, 401)
      assert.match(json(wrongOrigin).detail, /^Passkey not accepted: Unexpected authentication response origin "http:\/\/localhost:9999"/)
      const right = await passkeyLogin(app, user.authenticator.authenticate(options))
      assert.equal(right.statusCode, 401)
      assert.match(json(right).detail, /^Invalid or expired passkey challenge/)

      const registration = await registrationOptions(app, user.token)
      const refused = await addPasskey(app, user.token, { response: user.authenticator.register(registration, { userVerified: false }).response })
      assert.equal(refused.statusCode, 400)
      const retried = await addPasskey(app, user.token, { response: user.authenticator.register(registration).response })
      assert.equal(retried.statusCode, 400)
      assert.match(json(retried).detail, /^Invalid or expired passkey challenge/)
      assert.equal(await challengeCount(app), 0)
    })

    it('of one ceremony are refused by the other (and spent)', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      // A registration challenge signed as a login.
      const registration = await registrationOptions(app, user.token)
      const asLogin = await passkeyLogin(app, user.authenticator.authenticate({ challenge: registration.challenge }))
      assert.equal(asLogin.statusCode, 401)
      assert.match(json(asLogin).detail, /^Invalid or expired passkey challenge/)
      assert.equal((await addPasskey(app, user.token, { response: new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }).register(registration).response })).statusCode, 400, 'spent')
      // A login challenge used to register.
      const login = await loginOptions(app)
      const other = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      const asRegistration = await addPasskey(app, user.token, { response: other.register({ ...registration, challenge: login.challenge }).response })
      assert.equal(asRegistration.statusCode, 400)
      assert.match(json(asRegistration).detail, /^Invalid or expired passkey challenge/)
      assert.equal((await passkeyLogin(app, user.authenticator.authenticate(login))).statusCode, 401, 'spent')
      // The right challenge with the other ceremony's client data type.
      const typed = await passkeyLogin(app, user.authenticator.authenticate(await loginOptions(app), { type: 'webauthn.create' }))
      assert.equal(typed.statusCode, 401)
      assert.match(json(typed).detail, /Unexpected authentication response type/)
      assert.equal((await passkeyRows(app, user.id)).length, 1)
    })

    it('belong to the session that asked for registration options', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createUser(app)
      const otherSession = json(await passwordLogin(app, user)).access_token
      const options = await registrationOptions(app, user.token)
      const refused = await addPasskey(app, otherSession, { response: new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }).register(options).response })
      assert.equal(refused.statusCode, 400)
      assert.match(json(refused).detail, /^Invalid or expired passkey challenge/)
    })

    it('expire after 5 minutes', async (t) => {
      const { app, clock } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const options = await loginOptions(app)
      clock.advance(5 * 60_000)
      const late = await passkeyLogin(app, user.authenticator.authenticate(options))
      assert.equal(late.statusCode, 401)
      assert.match(json(late).detail, /^Invalid or expired passkey challenge/)
      const inTime = await loginOptions(app)
      clock.advance(5 * 60_000 - 1)
      assert.equal((await passkeyLogin(app, user.authenticator.authenticate(inTime))).statusCode, 200)

      const fresh = json(await passkeyLogin(app, user.authenticator.authenticate(await loginOptions(app)))).access_token
      const registration = await registrationOptions(app, fresh)
      clock.advance(5 * 60_000)
      const expired = await addPasskey(app, fresh, { response: new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }).register(registration).response })
      assert.equal(expired.statusCode, 400)
      // Expired rows are swept as new ones come.
      await loginOptions(app)
      assert.equal(await challengeCount(app), 1)
    })
  })

  describe(`relying party from configuration only (${dialect.name})`, { skip: dialect.skip }, () => {
    it('ignores forged Host, Origin and X-Forwarded-* headers: options name the configured RP, responses for another are refused', async (t) => {
      const { app } = await passkeyApp(t, dialect.name, { TRUST_PROXY: 'true' })
      const user = await createPasskeyUser(app)
      const forged = { host: 'evil.example', origin: 'https://evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' }
      const registration = await registrationOptions(app, user.token, forged)
      assert.equal(registration.rp.id, 'localhost')
      const login = await loginOptions(app, forged)
      assert.equal(login.rpId, 'localhost')

      // An authenticator on the attacker's site signs for its own origin and RP ID.
      const evil = new SoftAuthenticator({ rpId: 'evil.example', origin: 'https://evil.example' })
      const evilRegistration = await app.inject({ method: 'POST', url: '/users/me/passkeys', headers: { ...forged, authorization: `Bearer ${user.token}` }, payload: { response: evil.register(registration).response } })
      assert.equal(evilRegistration.statusCode, 400)
      assert.match(json(evilRegistration).detail, /Unexpected registration response origin "https:\/\/evil\.example", expected one of: http:\/\/localhost:8000/)

      const options = await loginOptions(app, forged)
      const wrongOrigin = await app.inject({ method: 'POST', url: '/users/login/passkey', headers: forged, payload: { response: user.authenticator.authenticate(options, { origin: 'https://evil.example' }) } })
      assert.equal(wrongOrigin.statusCode, 401)
      assert.match(json(wrongOrigin).detail, /origin "https:\/\/evil\.example"/)
      const wrongRp = await app.inject({ method: 'POST', url: '/users/login/passkey', headers: forged, payload: { response: user.authenticator.authenticate(await loginOptions(app), { rpId: 'evil.example' }) } })
      assert.equal(wrongRp.statusCode, 401)
      assert.match(json(wrongRp).detail, /RP ID/)
      assert.equal((await passkeyRows(app, user.id)).length, 1)
    })

    it('follows WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS', async (t) => {
      const env = { PUBLIC_URL: 'https://accounts.example.com', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://accounts.example.com,https://app.example.com', WEBAUTHN_RP_NAME: 'Example' }
      const { app } = await passkeyApp(t, dialect.name, env)
      const user = await createUser(app)
      const options = await registrationOptions(app, user.token)
      assert.deepEqual(options.rp, { name: 'Example', id: 'example.com' })
      const authenticator = new SoftAuthenticator({ rpId: 'example.com', origin: 'https://app.example.com' })
      assert.equal((await addPasskey(app, user.token, { response: authenticator.register(options).response })).statusCode, 201)
      assert.equal((await loginWith(app, authenticator, { origin: 'https://accounts.example.com' })).statusCode, 200)
      const localhost = await loginWith(app, authenticator, { origin: 'http://localhost:8000' })
      assert.equal(localhost.statusCode, 401)
    })
  })

  describe(`logging in with a passkey (${dialect.name})`, { skip: dialect.skip }, () => {
    it('returns the token pair at aal2 with amr webauthn, a fresh login, with no username asked', async (t) => {
      const { app, clock } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      clock.advance(60_000)
      const options = await loginOptions(app)
      assert.equal(options.userVerification, 'required')
      assert.deepEqual(options.allowCredentials ?? [], [], 'no credentials named: the browser offers its own')
      const response = await passkeyLogin(app, user.authenticator.authenticate(options))
      assert.equal(response.statusCode, 200, response.body)
      const pair = json(response)
      assert.deepEqual(Object.keys(pair).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type'])
      const claims = decodeClaims(pair.access_token)
      assert.equal(claims.sub, String(user.id))
      assert.equal(claims.aal, 'aal2')
      assert.deepEqual(claims.amr, [{ method: 'webauthn', timestamp: Math.floor(clock.now() / 1000) }])
      const session = (await sessionsOf(app, user.id)).find((row) => row.id === claims.sid)!
      assert.equal(session.aal, 'aal2')
      assert.equal(session.passkey_id, user.passkey.id)
      const [row] = await passkeyRows(app, user.id)
      assert.equal(row.counter, 1)
      assert.equal(row.last_used_at, new Date(clock.now()).toISOString())
      const [event] = (await auditOf(app, user.id, 'login')).filter((entry) => entry.outcome === 'success').slice(-1)
      assert.deepEqual(JSON.parse(event.detail!).methods, ['webauthn'])

      const refreshed = json(await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } }))
      assert.equal(decodeClaims(refreshed.access_token).aal, 'aal2', 'a refresh keeps the level')
      // aal2 and recent: the sensitive changes of an account with a second factor are allowed.
      assert.equal((await authed(app, pair.access_token, { method: 'PUT', url: `/users/${user.id}`, payload: { password: 'a-new-Password-123' } })).statusCode, 200)
    })

    it('completes a password login answered with "MFA required"; a recovery code does too', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const mfaToken = await challenge(app, user)
      const viaPasskey = await loginWith(app, user.authenticator)
      assert.equal(viaPasskey.statusCode, 200)
      const viaCode = await mfaLogin(app, { mfa_token: mfaToken, recovery_code: user.passkey.recovery_codes[0] })
      assert.equal(viaCode.statusCode, 200, viaCode.body)
      assert.deepEqual(decodeClaims(json(viaCode).access_token).amr.map((entry: { method: string }) => entry.method), ['pwd', 'recovery_code'])
    })

    it('applies the counter rule: a counter that does not grow is refused; a synced passkey\'s 0 keeps working', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      assert.equal((await loginWith(app, user.authenticator, { counter: 5 })).statusCode, 200)
      for (const counter of [5, 4, 0]) {
        const refused = await loginWith(app, user.authenticator, { counter })
        assert.equal(refused.statusCode, 401, `counter ${counter}`)
        assert.match(json(refused).detail, new RegExp(`^Passkey not accepted: Response counter value ${counter} was lower than expected 5`))
      }
      assert.equal((await passkeyRows(app, user.id))[0].counter, 5)
      assert.equal((await loginWith(app, user.authenticator, { counter: 6 })).statusCode, 200)
      assert.equal((await passkeyRows(app, user.id))[0].counter, 6)
      const failures = (await auditOf(app, user.id, 'login')).filter((entry) => entry.outcome === 'failure')
      assert.deepEqual(failures.map((entry) => JSON.parse(entry.detail!)), Array(3).fill({ method: 'passkey', reason: 'verification' }))

      const synced = await createPasskeyUser(app, new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, synced: true }))
      for (let i = 0; i < 3; i++) assert.equal((await loginWith(app, synced.authenticator)).statusCode, 200, `synced login ${i + 1}`)
      const [row] = await passkeyRows(app, synced.id)
      assert.equal(row.counter, 0)
      assert.equal(row.device_type, 'multiDevice')
      assert.equal(row.backed_up, 1)
    })

    it('gives one success to concurrent logins with assertions signed against the same counter', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const first = user.authenticator.authenticate(await loginOptions(app), { counter: 3 })
      const second = user.authenticator.authenticate(await loginOptions(app), { counter: 3 })
      const statuses = (await Promise.all([passkeyLogin(app, first), passkeyLogin(app, second)])).map((response) => response.statusCode).sort()
      assert.deepEqual(statuses, [200, 401])
    })

    it('refuses a passkey that did not verify the user, an unknown passkey, and a user handle that is not the passkey\'s', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const unverified = await loginWith(app, user.authenticator, { userVerified: false })
      assert.equal(unverified.statusCode, 401)
      assert.match(json(unverified).detail, /^Passkey not accepted: User verification required, but user could not be verified/)
      const unknown = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN })
      unknown.register({ user: { id: user.credential.userHandle }, challenge: 'x' })
      const notRegistered = await loginWith(app, unknown)
      assert.equal(notRegistered.statusCode, 401)
      assert.deepEqual(json(notRegistered), { detail: 'This passkey is not registered here (it may have been removed)' })
      const otherHandle = await loginWith(app, user.authenticator, { userHandle: Buffer.alloc(32, 7).toString('base64url') })
      assert.equal(otherHandle.statusCode, 401)
      assert.match(json(otherHandle).detail, /does not belong to the account it names/)
      const noHandle = await loginWith(app, user.authenticator, { userHandle: null })
      assert.equal(noHandle.statusCode, 401)
      assert.equal((await sessionsOf(app, user.id)).length, 1, 'no session from any of them')
    })

    it('applies the account-state rules of the password login: an unverified email under EMAIL_VERIFICATION=required', async (t) => {
      // The passkey is added while verification is optional; the operator then makes it required.
      const { app: optional, databaseUrl } = await passkeyApp(t, dialect.name)
      const passkeyUser = await createPasskeyUser(optional)
      const { app: required } = await buildTestApp(t, { dialect: dialect.name, databaseUrl, env: { EMAIL_VERIFICATION: 'required' }, overrides: { now: optional.now } })
      const refused = await loginWith(required, passkeyUser.authenticator)
      assert.equal(refused.statusCode, 403)
      assert.deepEqual(json(refused), { detail: 'Email not verified' })
      const failure = (await auditOf(required, passkeyUser.id, 'login')).at(-1)!
      assert.equal(JSON.parse(failure.detail!).reason, 'email_not_verified')
      await db(required).updateTable('users').set({ email_verified_at: new Date(START).toISOString() }).where('id', '=', passkeyUser.id).execute()
      assert.equal((await loginWith(required, passkeyUser.authenticator)).statusCode, 200)
    })

    it('is limited per address by LOGIN_IP_LIMIT, options and login each', async (t) => {
      const { app } = await passkeyApp(t, dialect.name, { LOGIN_IP_LIMIT: '3/5m' })
      const user = await createPasskeyUser(app)
      const options = []
      for (let i = 0; i < 3; i++) options.push(await loginOptions(app, {}, '203.0.113.9'))
      const limited = await app.inject({ method: 'POST', url: '/users/login/passkey/options', remoteAddress: '203.0.113.9' })
      assert.equal(limited.statusCode, 429)
      assert.ok(Number(limited.headers['retry-after']) > 0)
      for (const option of options) assert.equal((await passkeyLogin(app, user.authenticator.authenticate(option), '203.0.113.9')).statusCode, 200)
      assert.equal((await passkeyLogin(app, user.authenticator.authenticate(await loginOptions(app)), '203.0.113.9')).statusCode, 429)
      assert.equal((await loginOptions(app, {}, '203.0.113.10')).rpId, 'localhost', 'another address is not limited')
    })
  })

  describe(`removing a passkey (${dialect.name})`, { skip: dialect.skip }, () => {
    it('ends the sessions it signed in; the account keeps its other factor and the other sessions their level', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const phone = new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN, synced: true })
      const added = json(await addPasskey(app, user.token, { response: phone.register(await registrationOptions(app, user.token)).response, name: 'Phone' }))
      const viaLaptop = json(await loginWith(app, user.authenticator)).access_token
      const viaPhone = json(await loginWith(app, phone)).access_token

      const removed = await authed(app, viaLaptop, { method: 'DELETE', url: `/users/me/passkeys/${added.id}` })
      assert.equal(removed.statusCode, 204, removed.body)
      assert.equal((await authed(app, viaPhone, { method: 'GET', url: '/users/me' })).statusCode, 401, 'the session the phone signed in ended')
      assert.equal((await authed(app, viaLaptop, { method: 'GET', url: '/users/me' })).statusCode, 200)
      const live = (await sessionsOf(app, user.id)).filter((session) => session.revoked_at === null)
      assert.ok(live.length === 2 && live.every((session) => session.aal === 'aal2'))
      assert.equal(await mfaEnabled(app, user.id), 1)
      assert.equal((await loginWith(app, phone)).statusCode, 401)
      assert.ok((await outboxPurposes(app, user.id)).includes('passkey_removed'))
      assert.equal(JSON.parse((await auditOf(app, user.id, 'passkey_removed'))[0].detail!).sessions_revoked, 1)
      assert.equal((await authed(app, viaLaptop, { method: 'DELETE', url: `/users/me/passkeys/${added.id}` })).statusCode, 404)
    })

    it('removing the last second factor: recovery codes gone, sessions at aal1, the password alone logs in', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const mfaToken = await challenge(app, user)
      const viaCode = json(await mfaLogin(app, { mfa_token: mfaToken, recovery_code: user.passkey.recovery_codes[0] })).access_token
      const removed = await authed(app, viaCode, { method: 'DELETE', url: `/users/me/passkeys/${user.passkey.id}` })
      assert.equal(removed.statusCode, 204, removed.body)
      assert.equal(await mfaEnabled(app, user.id), 0)
      assert.equal((await db(app).selectFrom('mfa_recovery_codes').select('id').where('user_id', '=', user.id).execute()).length, 0)
      const live = (await sessionsOf(app, user.id)).filter((session) => session.revoked_at === null)
      assert.equal(live.length, 1, 'the registering session (raised by the passkey) ended with it')
      assert.equal(live[0].aal, 'aal1')
      assert.equal((await passwordLogin(app, user)).statusCode, 200)
    })

    it('needs an aal2 session and a recent login', async (t) => {
      const { app, clock } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      const pair = json(await loginWith(app, user.authenticator))
      const session = decodeClaims(pair.access_token).sid
      await db(app).updateTable('sessions').set({ aal: 'aal1' }).where('id', '=', session).execute()
      const aal1 = await authed(app, pair.access_token, { method: 'DELETE', url: `/users/me/passkeys/${user.passkey.id}` })
      assert.equal(aal1.statusCode, 403)
      assert.deepEqual(json(aal1), { detail: 'This action needs a second factor' })
      await db(app).updateTable('sessions').set({ aal: 'aal2' }).where('id', '=', session).execute()
      clock.advance(16 * 60_000)
      const refreshed = json(await app.inject({ method: 'POST', url: '/users/refresh', payload: { refresh_token: pair.refresh_token } }))
      const stale = await authed(app, refreshed.access_token, { method: 'DELETE', url: `/users/me/passkeys/${user.passkey.id}` })
      assert.equal(stale.statusCode, 403)
      assert.equal(json(stale).detail, 'Recent login required: log in again to remove a passkey')
      assert.equal((await passkeyRows(app, user.id)).length, 1)
      assert.equal((await authed(app, refreshed.access_token, { method: 'DELETE', url: '/users/me/passkeys/1e3' })).statusCode, 400)
    })

    it('is for the owner only: another user\'s passkey id is a 404', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const owner = await createPasskeyUser(app)
      const other = await createPasskeyUser(app)
      const response = await authed(app, other.token, { method: 'DELETE', url: `/users/me/passkeys/${owner.passkey.id}` })
      assert.equal(response.statusCode, 404)
      assert.equal((await passkeyRows(app, owner.id)).length, 1)
    })
  })

  describe(`admin reset and account deletion (${dialect.name})`, { skip: dialect.skip }, () => {
    it('an admin\'s MFA reset removes the passkeys with the other factors', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const admin = await createUser(app, { admin: true })
      const user = await createPasskeyUser(app)
      const response = await authed(app, admin.token, { method: 'DELETE', url: `/admin/users/${user.id}/mfa` })
      assert.equal(response.statusCode, 204, response.body)
      assert.equal((await passkeyRows(app, user.id)).length, 0)
      assert.equal(await mfaEnabled(app, user.id), 0)
      const [event] = await auditOf(app, user.id, 'mfa_reset')
      assert.equal(JSON.parse(event.detail!).passkeys, 1)
      assert.equal((await loginWith(app, user.authenticator)).statusCode, 401)
      assert.equal((await passwordLogin(app, user)).statusCode, 200)
    })

    it('deleting the account deletes its passkeys', async (t) => {
      const { app } = await passkeyApp(t, dialect.name)
      const user = await createPasskeyUser(app)
      assert.equal((await authed(app, user.token, { method: 'DELETE', url: `/users/${user.id}` })).statusCode, 204)
      assert.equal((await passkeyRows(app, user.id)).length, 0)
    })
  })
}

describe('the pieces that change nothing between dialects', () => {
  it('keeps the algorithms pinned when the runtime offers ML-DSA-44 (a newer Node): options and verification', async (t) => {
    const { SettingsService } = await import('@simplewebauthn/server')
    const original = SettingsService.runtimeSupportsPQC
    SettingsService.runtimeSupportsPQC = () => true
    t.after(() => { SettingsService.runtimeSupportsPQC = original })
    const { app } = await passkeyApp(t, 'sqlite')
    const user = await createUser(app)
    const options = await registrationOptions(app, user.token)
    assert.deepEqual(options.pubKeyCredParams.map((param: { alg: number }) => param.alg), [-8, -7, -257], 'not ML-DSA-44 first, as the library would')
    const mlDsa = await addPasskey(app, user.token, { response: new SoftAuthenticator({ rpId: RP_ID, origin: ORIGIN }).register(options, { alg: -48 }).response })
    assert.equal(mlDsa.statusCode, 400)
    assert.match(json(mlDsa).detail, /Unexpected public key alg "-48", expected one of "-8, -7, -257"/)
    assert.equal((await passkeyRows(app, user.id)).length, 0)
  })

  it('answers 503 on the passkey routes when the defaults give no usable origin', async (t) => {
    const clock = createClock(START)
    const { app } = await buildTestApp(t, { dialect: 'sqlite', env: { PUBLIC_URL: 'http://192.168.1.20:8000' }, overrides: { now: clock.now } })
    const response = await app.inject({ method: 'POST', url: '/users/login/passkey/options' })
    assert.equal(response.statusCode, 503)
    assert.match(json(response).detail, /^Passkeys are not available on this server/)
  })

  it('documents every passkey route with an operationId, a summary, explicit security and its answers', async (t) => {
    const { app } = await buildTestApp(t, { dialect: 'sqlite' })
    const spec = json(await app.inject({ method: 'GET', url: '/openapi.json' }))
    const bearer = [{ bearerAuth: [] }]
    const routes: Array<[string, string, string, unknown[], string[]]> = [
      ['/users/me/passkeys/options', 'post', 'startPasskeyRegistration', bearer, ['200', '401', '403', '409', '503']],
      ['/users/me/passkeys', 'post', 'addPasskey', bearer, ['201', '400', '401', '403', '409']],
      ['/users/me/passkeys', 'get', 'listMyPasskeys', bearer, ['200', '401']],
      ['/users/me/passkeys/{passkey_id}', 'delete', 'removePasskey', bearer, ['204', '400', '401', '403', '404']],
      ['/users/login/passkey/options', 'post', 'startPasskeyLogin', [], ['200', '429', '503']],
      ['/users/login/passkey', 'post', 'loginPasskey', [], ['200', '400', '401', '403', '429']]
    ]
    for (const [path, method, operationId, security, statuses] of routes) {
      const operation = spec.paths[path]?.[method]
      assert.ok(operation, `${method} ${path} is documented`)
      assert.equal(operation.operationId, operationId)
      assert.ok(operation.summary.length > 10)
      assert.deepEqual(operation.security, security, `${operationId} security`)
      assert.deepEqual(Object.keys(operation.responses).sort(), statuses, operationId)
    }
    assert.ok(spec.paths['/users/me/passkeys'].post.requestBody)
    assert.ok(spec.paths['/users/login/passkey'].post.requestBody)
    assert.ok(spec.tags.some((tag: { name: string }) => tag.name === 'passkeys'))
  })

  it('renders the passkey notices with the name and no secret', () => {
    const templates = loadTemplates(undefined)
    const view = { app_name: 'Example', username: 'rohit', at: '2026-03-02 09:00', name: 'Work <laptop>', reset_url: 'https://a.example.com/account/reset-password', passkeys_url: 'https://a.example.com/account/passkeys' }
    for (const purpose of ['passkey_added', 'passkey_removed']) {
      for (const flags of [{}, { mfa_turned_on: true, mfa_turned_off: true }]) {
        const email = templates.render(purpose, { ...view, ...flags })
        assert.match(email.subject, /passkey .*Example/)
        assert.match(email.text, /"Work <laptop>"/)
        assert.match(email.html, /Work &lt;laptop&gt;/)
        assert.match(email.text, /https:\/\/a\.example\.com\/account\/passkeys/)
        assert.equal(/second factor/.test(email.text), 'mfa_turned_on' in flags, `${purpose}: the first/last factor paragraph only when it applies`)
      }
    }
  })
})

describe('WebAuthn configuration', () => {
  const CWD = '/srv/app'
  const webauthn = (env: Record<string, string>) => loadConfig(env, CWD).webauthn
  const refused = (env: Record<string, string>, variable: string, reason: RegExp) => {
    assert.throws(() => loadConfig(env, CWD), (error: Error) => {
      assert.match(error.message, new RegExp(`^Invalid configuration: ${variable} `))
      assert.match(error.message, reason)
      return true
    })
  }

  it('defaults to localhost for the quick start: the page is opened at http://localhost:PORT', () => {
    assert.deepEqual(webauthn({}), { rpId: 'localhost', rpName: 'User Management API', origins: ['http://localhost:8000'] })
    assert.deepEqual(webauthn({ PORT: '9000', APP_NAME: 'Acme' }), { rpId: 'localhost', rpName: 'Acme', origins: ['http://localhost:9000'] })
    assert.deepEqual(webauthn({ HOST: '0.0.0.0' }).origins, ['http://localhost:8000'])
    assert.deepEqual(webauthn({ PUBLIC_URL: 'http://[::1]:8080/base' }).origins, ['http://localhost:8080'])
  })

  it('takes the RP ID and origin from PUBLIC_URL when it is a domain name', () => {
    assert.deepEqual(webauthn({ PUBLIC_URL: 'https://accounts.example.com/auth' }), { rpId: 'accounts.example.com', rpName: 'User Management API', origins: ['https://accounts.example.com'] })
    assert.deepEqual(webauthn({ PUBLIC_URL: 'https://accounts.example.com', WEBAUTHN_RP_ID: 'Example.com' }).rpId, 'example.com')
    assert.deepEqual(webauthn({ PUBLIC_URL: 'https://accounts.example.com', WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://app.example.com, https://example.com:8443' }).origins,
      ['https://app.example.com', 'https://example.com:8443'])
    assert.equal(webauthn({ WEBAUTHN_RP_NAME: 'Example Sign-in' }).rpName, 'Example Sign-in')
  })

  it('turns passkeys off with the reason when the defaults cannot work (plain http or an IP address)', () => {
    for (const url of ['http://accounts.example.com', 'http://192.168.1.20:8000']) {
      const config = webauthn({ PUBLIC_URL: url })
      assert.deepEqual(config.origins, [])
      assert.match(config.problem!, /^passkeys are off: PUBLIC_URL's origin .* set WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS$/)
    }
  })

  it('refuses an RP ID that is not a domain name and origins the browser would refuse for it, naming the variable', () => {
    refused({ WEBAUTHN_RP_ID: 'https://example.com' }, 'WEBAUTHN_RP_ID', /must be a domain name/)
    refused({ WEBAUTHN_RP_ID: '127.0.0.1' }, 'WEBAUTHN_RP_ID', /not an IP address/)
    refused({ WEBAUTHN_RP_ID: 'example.com:443' }, 'WEBAUTHN_RP_ID', /no scheme, port or path/)
    refused({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://example.org' }, 'WEBAUTHN_ORIGINS', /is not on the RP ID example\.com/)
    refused({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'https://notexample.com' }, 'WEBAUTHN_ORIGINS', /is not on the RP ID/)
    refused({ WEBAUTHN_RP_ID: 'example.com', WEBAUTHN_ORIGINS: 'http://example.com' }, 'WEBAUTHN_ORIGINS', /must be https:\/\//)
    refused({ WEBAUTHN_ORIGINS: 'http://localhost:8000/account' }, 'WEBAUTHN_ORIGINS', /scheme, host and port only/)
    refused({ WEBAUTHN_ORIGINS: 'localhost:8000' }, 'WEBAUTHN_ORIGINS', /not an http/)
    refused({ WEBAUTHN_RP_NAME: 'x'.repeat(101) }, 'WEBAUTHN_RP_NAME', /at most 100/)
  })
})
