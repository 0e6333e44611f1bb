import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { ConfigError, loadConfig, resolveMfaKey } from '../src/config.js'
import { newRecoveryCode, newRecoveryCodes, normalizeRecoveryCode } from '../src/mfa/recovery-codes.js'
import { createKeyring, mfaKeyId, open, seal, SecretBoxError, totpSecretContext } from '../src/mfa/secret-box.js'
import { matchTotpStep, normalizeTotpCode } from '../src/mfa/totp.js'
import { runCli } from './cli-process.js'
import { buildTestApp, captureLogs, createClock, createTestDatabase, DIALECTS, json } from './helpers.js'
import { challenge, createMfaUser, hotp, mfaLogin, totpAt } from './mfa-support.js'

// The pieces under MFA: RFC 6238 itself, the secret box (AES-256-GCM with a key id), recovery
// code format and normalisation, the MFA key's configuration, and a key rotation end to end.

describe('RFC 6238 (appendix B test vectors, SHA-1)', () => {
  const secret = Buffer.from('12345678901234567890', 'ascii')
  const vectors: Array<[number, string]> = [[59, '94287082'], [1111111109, '07081804'], [1111111111, '14050471'], [1234567890, '89005924'], [2000000000, '69279037'], [20000000000, '65353130']]

  it('the tests\' own TOTP gives the RFC\'s 8-digit values', () => {
    for (const [time, expected] of vectors) assert.equal(hotp(secret, Math.floor(time / 30), 8), expected, `T=${time}`)
  })

  it('the server accepts the RFC\'s values cut to 6 digits at their time, and returns their time step', () => {
    for (const [time, expected] of vectors) {
      assert.equal(matchTotpStep(secret, expected.slice(2), time * 1000, 0), Math.floor(time / 30), `T=${time}`)
      const wrong = String((Number(expected.slice(2)) + 1) % 1e6).padStart(6, '0')
      assert.equal(matchTotpStep(secret, wrong, time * 1000, 0), undefined)
    }
  })

  it('the server refuses a code for a step at or before the last one used', () => {
    const [time, expected] = vectors[2]
    const step = Math.floor(time / 30)
    assert.equal(matchTotpStep(secret, expected.slice(2), time * 1000, step), undefined)
    assert.equal(matchTotpStep(secret, expected.slice(2), time * 1000, step - 1), step)
    assert.equal(matchTotpStep(secret, expected.slice(2), time * 1000, step + 5), undefined, 'a last step ahead of the clock matches nothing (no throw)')
  })

  it('reads codes typed with a space or a dash, and nothing else', () => {
    assert.equal(normalizeTotpCode('123 456'), '123456')
    assert.equal(normalizeTotpCode(' 123-456 '), '123456')
    for (const bad of ['12345', '1234567', '12345a', '１２３４５６']) assert.equal(normalizeTotpCode(bad), undefined, bad)
  })
})

describe('secret box (AES-256-GCM, key ids)', () => {
  const keyA = randomBytes(32)
  const keyB = randomBytes(32)
  const plaintext = randomBytes(20)

  it('opens what it sealed, with a fresh IV each time', () => {
    const keyring = createKeyring(keyA)
    const one = seal(keyring, plaintext, totpSecretContext(7))
    const two = seal(keyring, plaintext, totpSecretContext(7))
    assert.notEqual(one.ciphertext, two.ciphertext)
    assert.equal(one.keyId, mfaKeyId(keyA))
    assert.deepEqual(open(keyring, one, totpSecretContext(7)), plaintext)
  })

  it('refuses a ciphertext moved to another user (the user id is associated data), altered, or under an unknown key', () => {
    const keyring = createKeyring(keyA)
    const sealed = seal(keyring, plaintext, totpSecretContext(7))
    assert.throws(() => open(keyring, sealed, totpSecretContext(8)), SecretBoxError)
    const raw = Buffer.from(sealed.ciphertext, 'base64url')
    raw[14] ^= 1
    assert.throws(() => open(keyring, { ...sealed, ciphertext: raw.toString('base64url') }, totpSecretContext(7)), SecretBoxError)
    assert.throws(() => open(createKeyring(keyB), sealed, totpSecretContext(7)), /key id .* not configured/)
  })

  it('opens with a previous key what it sealed, and seals with the current one', () => {
    const sealed = seal(createKeyring(keyA), plaintext, 'ctx')
    const rotated = createKeyring(keyB, [keyA])
    assert.deepEqual(open(rotated, sealed, 'ctx'), plaintext)
    assert.equal(seal(rotated, plaintext, 'ctx').keyId, mfaKeyId(keyB))
  })
})

describe('recovery codes', () => {
  it('are 16 characters of a 32-letter alphabet (80 bits) in four groups, all different', () => {
    const codes = Array.from({ length: 2000 }, newRecoveryCode)
    for (const code of codes.slice(0, 50)) assert.match(code, /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/)
    assert.equal(new Set(codes).size, codes.length)
    assert.equal(newRecoveryCodes().length, 10)
    // Every letter of the alphabet turns up, so the codes use all 5 bits of each character.
    assert.equal(new Set(codes.join('').replaceAll('-', '')).size, 32)
  })

  it('are read whatever the case, spaces and dashes, with o, i and l taken for 0, 1 and 1', () => {
    assert.equal(normalizeRecoveryCode('7K2M 9QXP-4HDW r3tz'), '7k2m9qxp4hdwr3tz')
    assert.equal(normalizeRecoveryCode('oIl0-0000-0000-0000'), '0110000000000000')
    for (const bad of ['7k2m-9qxp-4hdw', '7k2m-9qxp-4hdw-r3tzz', '7k2m-9qxp-4hdw-r3tu', '']) assert.equal(normalizeRecoveryCode(bad), undefined, bad)
  })
})

describe('MFA key configuration', () => {
  const hex = randomBytes(32).toString('hex')

  it('takes a 32-byte key as hex or base64, and previous keys beside it', () => {
    assert.deepEqual(loadConfig({ MFA_ENCRYPTION_KEY: hex }).mfa.encryptionKey, Buffer.from(hex, 'hex'))
    const b64 = randomBytes(32).toString('base64')
    assert.deepEqual(loadConfig({ MFA_ENCRYPTION_KEY: b64 }).mfa.encryptionKey, Buffer.from(b64, 'base64'))
    const config = loadConfig({ MFA_ENCRYPTION_KEY: b64, MFA_PREVIOUS_ENCRYPTION_KEYS: `${hex}, ${randomBytes(32).toString('base64url')}` })
    assert.equal(config.mfa.previousKeys.length, 2)
    assert.equal(loadConfig({}).mfa.lockoutThreshold, 10)
    assert.equal(loadConfig({}).mfa.lockoutSeconds, 900)
  })

  it('refuses a key of the wrong size or a placeholder, naming the variable and not echoing the value', () => {
    for (const [env, pattern] of [
      [{ MFA_ENCRYPTION_KEY: 'c2hvcnQ=' }, /MFA_ENCRYPTION_KEY must be 32 bytes/],
      [{ MFA_ENCRYPTION_KEY: hex.slice(2) }, /MFA_ENCRYPTION_KEY must be 32 bytes/],
      [{ MFA_ENCRYPTION_KEY: '0'.repeat(64) }, /MFA_ENCRYPTION_KEY looks like a placeholder/],
      [{ MFA_PREVIOUS_ENCRYPTION_KEYS: hex }, /MFA_PREVIOUS_ENCRYPTION_KEYS needs MFA_ENCRYPTION_KEY/],
      [{ MFA_ENCRYPTION_KEY: hex, MFA_PREVIOUS_ENCRYPTION_KEYS: 'nope' }, /MFA_PREVIOUS_ENCRYPTION_KEYS must be 32 bytes/]
    ] as const) {
      assert.throws(() => loadConfig(env), (error: Error) => {
        assert.ok(error instanceof ConfigError)
        assert.match(error.message, pattern)
        assert.ok(!error.message.includes(hex.slice(2, 40)), 'the key is not echoed')
        return true
      })
    }
  })

  it('generates a key into the data directory (owner-only) when none is set, and reuses it', (t) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'uma-mfa-key-'))
    t.after(() => rmSync(dataDir, { recursive: true, force: true }))
    const config = loadConfig({ DATA_DIR: dataDir })
    const first = resolveMfaKey(config)
    assert.equal(first.source, 'created')
    assert.equal(first.key.length, 32)
    assert.equal(statSync(join(dataDir, 'mfa-key')).mode & 0o777, 0o600)
    const second = resolveMfaKey(config)
    assert.equal(second.source, 'file')
    assert.deepEqual(second.key, first.key)
    assert.equal(Buffer.from(readFileSync(join(dataDir, 'mfa-key'), 'utf8').trim(), 'base64').length, 32)
    assert.equal(resolveMfaKey(loadConfig({ DATA_DIR: dataDir, MFA_ENCRYPTION_KEY: hex })).source, 'env')
  })
})

for (const dialect of DIALECTS) {
  describe(`MFA key rotation (${dialect.name})`, { skip: dialect.skip }, () => {
    it('keeps TOTP working across a rotation and re-encrypts each secret under the new key at its next use', async (t) => {
      const oldKey = randomBytes(32).toString('base64')
      const newKey = randomBytes(32).toString('base64')
      const database = await createTestDatabase(dialect.name)
      t.after(() => database.drop())
      const clock = createClock(Date.parse('2026-03-02T09:00:10Z'))
      const instance = async (env: Record<string, string>, logger?: object) =>
        (await buildTestApp(t, { dialect: dialect.name, databaseUrl: database.url, env, overrides: { now: clock.now, ...(logger && { logger }) } })).app
      const keyIdOf = async (app: Awaited<ReturnType<typeof instance>>, userId: number) =>
        (await app.db.kysely.selectFrom('mfa_totp').select('key_id').where('user_id', '=', userId).executeTakeFirstOrThrow()).key_id

      const before = await instance({ MFA_ENCRYPTION_KEY: oldKey })
      const user = await createMfaUser(before)
      assert.equal(await keyIdOf(before, user.id), mfaKeyId(Buffer.from(oldKey, 'base64')))

      const during = await instance({ MFA_ENCRYPTION_KEY: newKey, MFA_PREVIOUS_ENCRYPTION_KEYS: oldKey })
      clock.advance(30_000)
      assert.equal((await mfaLogin(during, { mfa_token: await challenge(during, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200)
      assert.equal(await keyIdOf(during, user.id), mfaKeyId(Buffer.from(newKey, 'base64')), 're-encrypted under the new key')

      const after = await instance({ MFA_ENCRYPTION_KEY: newKey })
      clock.advance(30_000)
      assert.equal((await mfaLogin(after, { mfa_token: await challenge(after, user), code: totpAt(user.secret, clock.now()) })).statusCode, 200, 'the old key is no longer needed')

      // A server without the key that encrypted a secret says so in its log, not in its answer.
      const logs = captureLogs()
      const wrong = await instance({ MFA_ENCRYPTION_KEY: oldKey }, logs.logger)
      clock.advance(30_000)
      const refused = await mfaLogin(wrong, { mfa_token: await challenge(wrong, user), code: totpAt(user.secret, clock.now()) })
      assert.equal(refused.statusCode, 500)
      assert.deepEqual(json(refused), { detail: 'Internal Server Error' })
      assert.ok(logs.lines.some((line) => /key id \S+, which is not configured/.test(line.err?.message ?? '')), 'the log names the missing key id')
    })

    it('rotate-mfa-key re-encrypts every secret under the new key, and names the keys it cannot read', async (t) => {
      const oldKey = randomBytes(32).toString('base64')
      const newKey = randomBytes(32).toString('base64')
      const { app, databaseUrl } = await buildTestApp(t, { dialect: dialect.name, env: { MFA_ENCRYPTION_KEY: oldKey } })
      const users = [await createMfaUser(app), await createMfaUser(app)]
      const keyIds = async () => (await app.db.kysely.selectFrom('mfa_totp').select('key_id').execute()).map((row) => row.key_id)

      const missing = await runCli(databaseUrl, ['rotate-mfa-key'], '', { MFA_ENCRYPTION_KEY: newKey })
      assert.equal(missing.code, 1, missing.stderr)
      assert.match(missing.stderr, new RegExp(`2 secret\\(s\\) under key id ${mfaKeyId(Buffer.from(oldKey, 'base64'))}, which is not configured`))
      assert.ok(!missing.stdout.includes(oldKey) && !missing.stderr.includes(oldKey), 'no key in the output')

      const rotated = await runCli(databaseUrl, ['rotate-mfa-key'], '', { MFA_ENCRYPTION_KEY: newKey, MFA_PREVIOUS_ENCRYPTION_KEYS: oldKey })
      assert.equal(rotated.code, 0, rotated.stderr)
      assert.match(rotated.stdout, /Re-encrypted 2 TOTP secret\(s\); 0 already under the current key/)
      assert.deepEqual(await keyIds(), [mfaKeyId(Buffer.from(newKey, 'base64')), mfaKeyId(Buffer.from(newKey, 'base64'))])
      const again = await runCli(databaseUrl, ['rotate-mfa-key'], '', { MFA_ENCRYPTION_KEY: newKey })
      assert.equal(again.code, 0)
      assert.match(again.stdout, /Re-encrypted 0 TOTP secret\(s\); 2 already under the current key/)

      const { app: after } = await buildTestApp(t, { dialect: dialect.name, databaseUrl, env: { MFA_ENCRYPTION_KEY: newKey } })
      for (const user of users) {
        assert.equal((await mfaLogin(after, { mfa_token: await challenge(after, user), code: totpAt(user.secret, Date.now() + 30_000) })).statusCode, 200)
      }
    })
  })
}
