import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { AppError } from '../src/errors.js'
import { createTokens } from '../src/auth/tokens.js'

// The access-token verifier remembers tokens it verified (src/auth/tokens.ts); what it remembers
// must never let through what a fresh verification would refuse.

const options = { secret: 'k'.repeat(43), issuer: 'user-management-api', audience: 'user-management-api', ttl: 900 }

function refused (verify: () => unknown, message: string) {
  assert.throws(verify, (error: unknown) => error instanceof AppError && error.statusCode === 401, message)
}

describe('access token verification', () => {
  it('checks expiry on every call, also for a token verified before', () => {
    let now = Date.UTC(2026, 10, 29, 12)
    const tokens = createTokens({ ...options, now: () => now })
    const token = tokens.sign(7, 'session-a')
    assert.deepEqual({ ...tokens.verify(token), claims: undefined }, { userId: 7, sessionId: 'session-a', claims: undefined })
    now += 899_000
    assert.equal(tokens.verify(token).userId, 7, 'still valid a second before exp')
    now += 1_000
    refused(() => tokens.verify(token), 'refused at exp, though verified (and remembered) twice before')
  })

  it('remembers a token only by its whole text: any other text is verified afresh', () => {
    const tokens = createTokens({ ...options, now: () => Date.UTC(2026, 10, 29, 12) })
    const token = tokens.sign(7, 'session-a')
    tokens.verify(token)
    const [header, payload, signature] = token.split('.')
    const otherSignature = signature.slice(0, -2) + (signature.at(-2) === 'A' ? 'B' : 'A') + signature.at(-1)
    refused(() => tokens.verify(`${header}.${payload}.${otherSignature}`), 'another signature')
    const forged = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(payload, 'base64url').toString()), sub: '8' })).toString('base64url')
    refused(() => tokens.verify(`${header}.${forged}.${signature}`), 'another payload with the remembered signature')
    refused(() => createTokens({ ...options, secret: 'x'.repeat(43), now: () => Date.UTC(2026, 10, 29, 12) }).verify(token), 'another key')
  })

  it('hands out claims nobody can change for the next request', () => {
    const tokens = createTokens({ ...options, now: () => Date.UTC(2026, 10, 29, 12) })
    const token = tokens.sign(7, 'session-a')
    const { claims } = tokens.verify(token)
    assert.throws(() => { (claims as { sub: string }).sub = '8' }, TypeError)
    assert.equal(tokens.verify(token).userId, 7)
  })
})
