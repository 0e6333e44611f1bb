import assert from 'node:assert/strict'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { ConfigError, loadConfig, resolveJwtSecret } from '../src/config.js'

const CWD = '/srv/app'
const SECRET = 'a'.repeat(32)

/** Asserts loadConfig refuses env with a ConfigError naming `variable` and not echoing `secret`. */
function assertRefused (env: Record<string, string>, variable: string, secret?: string) {
  assert.throws(() => loadConfig(env, CWD), (error: unknown) => {
    assert.ok(error instanceof ConfigError, String(error))
    assert.match(error.message, new RegExp(`\\b${variable}\\b`))
    if (secret !== undefined) assert.ok(!error.message.includes(secret), 'the message must not echo the secret')
    return true
  })
}

function tempDir (t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'uma-config-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

describe('loadConfig', () => {
  it('defaults to 127.0.0.1:8000 with a SQLite file under ./data and no JWT secret', () => {
    const config = loadConfig({}, CWD)
    assert.equal(config.host, '127.0.0.1')
    assert.equal(config.port, 8000)
    assert.equal(config.dataDir, '/srv/app/data')
    assert.deepEqual(config.database, { dialect: 'sqlite', location: '/srv/app/data/users.db', display: 'sqlite:////srv/app/data/users.db' })
    assert.equal(config.jwtSecret, undefined)
    assert.equal(config.accessTokenTtl, 900)
    assert.equal(config.passwordMinLength, 8)
    assert.equal(config.passwordMaxLength, 256)
    assert.equal(config.logLevel, 'info')
    assert.equal(config.bodyLimit, 16 * 1024)
  })

  it('puts the default SQLite file under DATA_DIR', () => {
    assert.equal(loadConfig({ DATA_DIR: '/var/lib/uma' }, CWD).database.location, '/var/lib/uma/users.db')
    assert.equal(loadConfig({ DATA_DIR: 'state' }, CWD).database.location, '/srv/app/state/users.db')
  })

  it('reads HOST, PORT, ACCESS_TOKEN_TTL, PASSWORD_MIN_LENGTH and LOG_LEVEL', () => {
    const config = loadConfig({ HOST: '0.0.0.0', PORT: '9000', ACCESS_TOKEN_TTL: '15m', PASSWORD_MIN_LENGTH: '12', LOG_LEVEL: 'DEBUG', JWT_SECRET: SECRET }, CWD)
    assert.equal(config.host, '0.0.0.0')
    assert.equal(config.port, 9000)
    assert.equal(config.accessTokenTtl, 900)
    assert.equal(config.passwordMinLength, 12)
    assert.equal(config.logLevel, 'debug')
    assert.equal(config.jwtSecret, SECRET)
    assert.equal(loadConfig({ ACCESS_TOKEN_TTL: '600' }, CWD).accessTokenTtl, 600)
  })

  describe('DATABASE_URL', () => {
    it('takes sqlite:///./users.db as relative to the working directory', () => {
      assert.equal(loadConfig({ DATABASE_URL: 'sqlite:///./users.db' }, CWD).database.location, '/srv/app/users.db')
      assert.equal(loadConfig({ DATABASE_URL: 'sqlite:///db/users.db' }, CWD).database.location, '/srv/app/db/users.db')
      assert.equal(loadConfig({ DATABASE_URL: 'sqlite:///./users.db' }, '/elsewhere').database.location, '/elsewhere/users.db')
    })

    it('takes sqlite:////var/lib/app/users.db as absolute', () => {
      const { database } = loadConfig({ DATABASE_URL: 'sqlite:////var/lib/app/users.db' }, CWD)
      assert.equal(database.dialect, 'sqlite')
      assert.equal(database.location, '/var/lib/app/users.db')
    })

    it('takes sqlite:///:memory:', () => {
      assert.equal(loadConfig({ DATABASE_URL: 'sqlite:///:memory:' }, CWD).database.location, ':memory:')
    })

    it('takes postgresql:// and postgres:// (and a SQLAlchemy driver suffix) and masks the password for display', () => {
      for (const url of ['postgresql://app:s3cret@db.internal:5432/users', 'postgres://app:s3cret@db.internal:5432/users', 'postgresql+psycopg2://app:s3cret@db.internal:5432/users']) {
        const { database } = loadConfig({ DATABASE_URL: url }, CWD)
        assert.equal(database.dialect, 'postgres', url)
        const parsed = new URL(database.location)
        assert.equal(parsed.hostname, 'db.internal', url)
        assert.equal(parsed.port, '5432', url)
        assert.equal(parsed.pathname, '/users', url)
        assert.equal(parsed.username, 'app', url)
        assert.equal(parsed.password, 's3cret', url)
        assert.ok(!database.display.includes('s3cret'), url)
      }
    })

    it('refuses other schemes and malformed SQLite URLs, naming DATABASE_URL', () => {
      assertRefused({ DATABASE_URL: 'mysql://root:pw@localhost/users' }, 'DATABASE_URL', 'pw@')
      assertRefused({ DATABASE_URL: 'sqlite://users.db' }, 'DATABASE_URL')
      assertRefused({ DATABASE_URL: 'sqlite:///' }, 'DATABASE_URL')
      assertRefused({ DATABASE_URL: 'users.db' }, 'DATABASE_URL')
    })
  })

  describe('PUBLIC_URL', () => {
    it('defaults to http://HOST:PORT (a wildcard HOST as localhost, IPv6 hosts in brackets)', () => {
      assert.equal(loadConfig({}, CWD).publicUrl, 'http://127.0.0.1:8000')
      assert.equal(loadConfig({ HOST: '0.0.0.0', PORT: '9000' }, CWD).publicUrl, 'http://localhost:9000')
      assert.equal(loadConfig({ HOST: '::1' }, CWD).publicUrl, 'http://[::1]:8000')
    })

    it('keeps an origin with an optional path prefix, without the trailing slash', () => {
      assert.equal(loadConfig({ PUBLIC_URL: 'https://accounts.example.com' }, CWD).publicUrl, 'https://accounts.example.com')
      assert.equal(loadConfig({ PUBLIC_URL: 'https://accounts.example.com/' }, CWD).publicUrl, 'https://accounts.example.com')
      assert.equal(loadConfig({ PUBLIC_URL: 'HTTPS://Example.COM:443/auth/api/' }, CWD).publicUrl, 'https://example.com/auth/api')
      assert.equal(loadConfig({ PUBLIC_URL: 'http://localhost:8000' }, CWD).publicUrl, 'http://localhost:8000')
    })

    it('refuses what is not an http(s) URL, or carries credentials, a query or a fragment', () => {
      for (const value of ['accounts.example.com', 'ftp://example.com', 'https://', 'https://example.com/?a=1', 'https://example.com/#x']) {
        assertRefused({ PUBLIC_URL: value }, 'PUBLIC_URL')
      }
      assertRefused({ PUBLIC_URL: 'https://user:secret-pw@example.com' }, 'PUBLIC_URL', 'secret-pw')
      assertRefused({ PUBLIC_URL: 'https://user:secret-pw@' }, 'PUBLIC_URL', 'secret-pw')
    })
  })

  describe('email settings', () => {
    it('defaults: optional verification, log transport, links to the built-in pages under PUBLIC_URL', () => {
      const config = loadConfig({ PUBLIC_URL: 'https://accounts.example.com/base' }, CWD)
      assert.equal(config.emailVerification, 'optional')
      assert.equal(config.mail.smtpUrl, undefined)
      assert.equal(config.verifyEmailUrl, 'https://accounts.example.com/base/account/verify-email#token={token}')
      assert.equal(config.resetPasswordUrl, 'https://accounts.example.com/base/account/reset-password#token={token}')
      assert.equal(config.setPasswordUrl, 'https://accounts.example.com/base/account/set-password#token={token}')
      assert.equal(config.resetTokenTtl, 3600)
      assert.equal(config.verifyTokenTtl, 86400)
      assert.equal(config.mail.maxAttempts, 8)
      assert.deepEqual(config.mail.ipLimit, { max: 10, window: 300 })
      assert.equal(config.mail.from, '"User Management API" <no-reply@localhost>')
    })

    it('reads SMTP_URL, masking its password for logs, and MAIL_FROM, APP_NAME and the link templates', () => {
      const config = loadConfig({
        SMTP_URL: 'smtps://mailer:s3cret@smtp.example.com:465',
        MAIL_FROM: 'Example <no-reply@example.com>',
        APP_NAME: 'Example',
        EMAIL_VERIFICATION: 'REQUIRED',
        RESET_PASSWORD_URL: 'https://app.example.com/reset?t={token}',
        RESET_TOKEN_TTL: '30m',
        MAIL_TEMPLATES_DIR: 'mail'
      }, CWD)
      assert.equal(config.mail.smtpUrl, 'smtps://mailer:s3cret@smtp.example.com:465')
      assert.equal(config.mail.smtpDisplay, 'smtps://mailer:***@smtp.example.com:465')
      assert.equal(config.mail.from, 'Example <no-reply@example.com>')
      assert.equal(config.appName, 'Example')
      assert.equal(config.emailVerification, 'required')
      assert.equal(config.resetPasswordUrl, 'https://app.example.com/reset?t={token}')
      assert.equal(config.setPasswordUrl, 'https://app.example.com/reset?t={token}', 'invitations go to the frontend that resets passwords')
      assert.equal(loadConfig({ RESET_PASSWORD_URL: 'https://app.example.com/reset?t={token}', SET_PASSWORD_URL: 'https://app.example.com/welcome#{token}' }, CWD).setPasswordUrl,
        'https://app.example.com/welcome#{token}')
      assert.equal(config.resetTokenTtl, 1800)
      assert.equal(config.mail.templatesDir, '/srv/app/mail')
    })

    it('refuses wrong values, naming the variable and never echoing the SMTP password', () => {
      assertRefused({ EMAIL_VERIFICATION: 'sometimes' }, 'EMAIL_VERIFICATION')
      assertRefused({ SMTP_URL: 'http://smtp.example.com', MAIL_FROM: 'a@b.c' }, 'SMTP_URL')
      assertRefused({ SMTP_URL: 'smtp://user:hunter2-password@' }, 'SMTP_URL', 'hunter2-password')
      assertRefused({ SMTP_URL: 'smtp://user:hunter2-password@smtp.example.com' }, 'MAIL_FROM', 'hunter2-password')
      assertRefused({ MAIL_FROM: 'not an address' }, 'MAIL_FROM')
      assertRefused({ VERIFY_EMAIL_URL: 'https://app.example.com/verify' }, 'VERIFY_EMAIL_URL')
      assertRefused({ RESET_PASSWORD_URL: 'javascript:alert({token})' }, 'RESET_PASSWORD_URL')
      assertRefused({ SET_PASSWORD_URL: 'https://app.example.com/welcome' }, 'SET_PASSWORD_URL')
      assertRefused({ RESET_TOKEN_TTL: '10s' }, 'RESET_TOKEN_TTL')
      assertRefused({ MAIL_MAX_ATTEMPTS: '0' }, 'MAIL_MAX_ATTEMPTS')
      assertRefused({ MAIL_IP_LIMIT: 'lots' }, 'MAIL_IP_LIMIT')
      assertRefused({ APP_NAME: 'x'.repeat(101) }, 'APP_NAME')
    })
  })

  describe('CORS_ORIGINS', () => {
    it('is empty by default and when blank', () => {
      assert.deepEqual(loadConfig({}, CWD).corsOrigins, [])
      assert.deepEqual(loadConfig({ CORS_ORIGINS: ' , ' }, CWD).corsOrigins, [])
    })

    it('takes exact origins, normalised as browsers send them (lower-case host, no default port), without duplicates', () => {
      const config = loadConfig({ CORS_ORIGINS: 'https://App.Example.com, http://localhost:5173,https://app.example.com:443,http://[::1]:3000/' }, CWD)
      assert.deepEqual(config.corsOrigins, ['https://app.example.com', 'http://localhost:5173', 'http://[::1]:3000'])
    })

    it('refuses wildcards, paths, other schemes, bare hosts, credentials and the "null" origin, naming the entry', () => {
      for (const value of ['*', 'https://*.example.com', 'https://app.example.com/app', 'https://app.example.com?x=1', 'ftp://files.example.com',
        'app.example.com', 'localhost:3000', 'https://user:pw@app.example.com', 'null', 'https://ok.example.com,https://bad.example.com/path']) {
        assertRefused({ CORS_ORIGINS: value }, 'CORS_ORIGINS')
      }
      assert.throws(() => loadConfig({ CORS_ORIGINS: 'https://ok.example.com,https://bad.example.com/path' }, CWD), /"https:\/\/bad\.example\.com\/path" has a path/)
    })

    it('reads CORS_MAX_AGE (default 2 hours) and HSTS_MAX_AGE (default one year) as durations, 0 allowed', () => {
      const defaults = loadConfig({}, CWD)
      assert.equal(defaults.corsMaxAge, 7200)
      assert.equal(defaults.hstsMaxAge, 365 * 86400)
      const set = loadConfig({ CORS_MAX_AGE: '10m', HSTS_MAX_AGE: '0' }, CWD)
      assert.equal(set.corsMaxAge, 600)
      assert.equal(set.hstsMaxAge, 0)
      assertRefused({ CORS_MAX_AGE: 'long' }, 'CORS_MAX_AGE')
      assertRefused({ HSTS_MAX_AGE: '-1' }, 'HSTS_MAX_AGE')
    })
  })

  describe('bad values fail at start with a message naming the variable', () => {
    it('refuses a PORT that is not a port number', () => {
      assertRefused({ PORT: 'abc' }, 'PORT')
      assertRefused({ PORT: '70000' }, 'PORT')
      assertRefused({ PORT: '-1' }, 'PORT')
      assertRefused({ PORT: '80.5' }, 'PORT')
    })

    it('refuses a JWT_SECRET shorter than 32 bytes without echoing it', () => {
      assertRefused({ JWT_SECRET: 'short-secret' }, 'JWT_SECRET', 'short-secret')
      assertRefused({ JWT_SECRET: 'b'.repeat(31) }, 'JWT_SECRET', 'b'.repeat(31))
    })

    it('measures JWT_SECRET in bytes: 32 ASCII bytes or 16 two-byte characters are enough', () => {
      assert.equal(loadConfig({ JWT_SECRET: SECRET }, CWD).jwtSecret, SECRET)
      assert.equal(loadConfig({ JWT_SECRET: 'é'.repeat(16) }, CWD).jwtSecret, 'é'.repeat(16))
    })

    it('refuses an unknown LOG_LEVEL', () => {
      assertRefused({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL')
    })

    it('refuses malformed durations and limits', () => {
      assertRefused({ ACCESS_TOKEN_TTL: 'soon' }, 'ACCESS_TOKEN_TTL')
      assertRefused({ ACCESS_TOKEN_TTL: '0' }, 'ACCESS_TOKEN_TTL')
      assertRefused({ PASSWORD_MIN_LENGTH: '0' }, 'PASSWORD_MIN_LENGTH')
      assertRefused({ PASSWORD_MIN_LENGTH: '300' }, 'PASSWORD_MIN_LENGTH')
    })
  })
})

describe('resolveJwtSecret', () => {
  it('creates a 256-bit secret in an owner-only file once and reuses it on the next call', (t) => {
    const dataDir = join(tempDir(t), 'not-yet-created')
    const config = loadConfig({ DATA_DIR: dataDir }, CWD)
    const first = resolveJwtSecret(config)
    assert.equal(first.source, 'created')
    assert.equal(first.path, join(dataDir, 'jwt-secret'))
    assert.ok(Buffer.from(first.secret, 'base64url').length >= 32)
    assert.equal(statSync(first.path!).mode & 0o777, 0o600)
    assert.equal(readFileSync(first.path!, 'utf8').trim(), first.secret)

    const second = resolveJwtSecret(config)
    assert.equal(second.source, 'file')
    assert.equal(second.secret, first.secret)
    assert.equal(statSync(first.path!).mode & 0o777, 0o600)
  })

  it('gives different secrets to different data directories', (t) => {
    const a = resolveJwtSecret(loadConfig({ DATA_DIR: join(tempDir(t), 'a') }, CWD))
    const b = resolveJwtSecret(loadConfig({ DATA_DIR: join(tempDir(t), 'b') }, CWD))
    assert.notEqual(a.secret, b.secret)
  })

  it('uses JWT_SECRET when set and writes no file', (t) => {
    const dataDir = tempDir(t)
    const result = resolveJwtSecret(loadConfig({ DATA_DIR: dataDir, JWT_SECRET: SECRET }, CWD))
    assert.deepEqual(result, { secret: SECRET, source: 'env' })
    assert.equal(existsSync(join(dataDir, 'jwt-secret')), false)
  })

  it('refuses a secret file holding fewer than 32 bytes, naming JWT_SECRET', (t) => {
    const dataDir = tempDir(t)
    mkdirSync(dataDir, { recursive: true })
    writeFileSync(join(dataDir, 'jwt-secret'), 'too-short\n', { mode: 0o600 })
    assert.throws(() => resolveJwtSecret(loadConfig({ DATA_DIR: dataDir }, CWD)), /JWT_SECRET/)
  })
})
