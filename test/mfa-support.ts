import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import jsQRModule from 'jsqr'
import { authed, createUser, json } from './helpers.js'

// What the MFA suites share: TOTP computed here from the secret with RFC 6238's maths (written
// independently of the library the server uses), base32, a QR reader for the enrollment's SVG,
// and the enrollment itself.

// jsqr is CommonJS whose module.exports is the function itself; its types say `export default`.
const jsQR = jsQRModule as unknown as typeof jsQRModule.default

export const STEP_MS = 30_000

/** RFC 4648 base32 (no padding needed for 20-byte secrets). */
export function base32Decode (text: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'
  let bits = 0
  let value = 0
  const bytes: number[] = []
  for (const char of text.replace(/=+$/, '').toUpperCase()) {
    const index = alphabet.indexOf(char)
    if (index < 0) throw new Error(`not base32: ${char}`)
    value = (value << 5) | index
    bits += 5
    if (bits >= 8) {
      bytes.push((value >>> (bits - 8)) & 0xff)
      bits -= 8
    }
  }
  return Buffer.from(bytes)
}

/** RFC 4226 HOTP over RFC 6238's time step: HMAC-SHA-1, dynamic truncation, `digits` digits. */
export function hotp (secret: Buffer, counter: number, digits = 6): string {
  const message = Buffer.alloc(8)
  message.writeBigUInt64BE(BigInt(counter))
  const mac = createHmac('sha1', secret).update(message).digest()
  const offset = mac[mac.length - 1] & 0x0f
  const binary = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3]
  return String(binary % 10 ** digits).padStart(digits, '0')
}

export const stepOf = (ms: number) => Math.floor(ms / STEP_MS)
export const startOfStep = (step: number) => step * STEP_MS
/** The code an authenticator app shows at `ms`. */
export const totpAt = (secret: Buffer, ms: number) => hotp(secret, stepOf(ms))
/** The code of a given step. */
export const totpOfStep = (secret: Buffer, step: number) => hotp(secret, step)

/** Reads the QR code of an SVG made of unit squares ("M x,y h s v s h -s z" paths), as a phone would scan it. */
export function readQrSvg (svg: string): string | undefined {
  const viewBox = /viewBox="0 0 (\d+) (\d+)"/.exec(svg)
  assert.ok(viewBox, 'the SVG has a viewBox')
  const size = Number(viewBox[1])
  const squares = [...svg.matchAll(/M(\d+),(\d+)h(\d+)v\d+h-\d+z/g)].map((match) => match.slice(1).map(Number))
  assert.ok(squares.length > 100, 'the SVG draws the modules')
  const module = squares[0][2]
  const scale = 4
  const width = (size / module) * scale
  const pixels = new Uint8ClampedArray(width * width * 4).fill(255)
  for (const [x, y] of squares) {
    for (let dy = 0; dy < scale; dy++) {
      for (let dx = 0; dx < scale; dx++) {
        const offset = (((y / module) * scale + dy) * width + (x / module) * scale + dx) * 4
        pixels[offset] = pixels[offset + 1] = pixels[offset + 2] = 0
      }
    }
  }
  return jsQR(pixels, width, width)?.data
}

export interface MfaUser {
  id: number
  email: string
  password: string
  username: string
  /** The aal2 session's access token (the one that confirmed TOTP). */
  token: string
  secret: Buffer
  recoveryCodes: string[]
}

/** Starts an enrollment; the secret as the app would read it. */
export async function startEnrollment (app: FastifyInstance, token: string): Promise<{ response: LightMyRequestResponse, secret: Buffer }> {
  const response = await authed(app, token, { method: 'POST', url: '/users/me/mfa/totp' })
  assert.equal(response.statusCode, 200, response.body)
  return { response, secret: base32Decode(json(response).secret) }
}

/** A user with TOTP on: enrolled and confirmed at the app's current time. */
export async function createMfaUser (app: FastifyInstance, options: { admin?: boolean } = {}): Promise<MfaUser> {
  const user = await createUser(app, options)
  const { secret } = await startEnrollment(app, user.token)
  const confirmed = await authed(app, user.token, { method: 'POST', url: '/users/me/mfa/totp/confirm', payload: { code: totpAt(secret, app.now()) } })
  assert.equal(confirmed.statusCode, 200, confirmed.body)
  return { ...user, secret, recoveryCodes: json(confirmed).recovery_codes }
}

export function passwordLogin (app: FastifyInstance, user: { email: string, password: string }, remoteAddress?: string) {
  return app.inject({ method: 'POST', url: '/users/login', payload: { email: user.email, password: user.password }, remoteAddress })
}

/** Logs in with the password; expects the MFA challenge and returns its mfa_token. */
export async function challenge (app: FastifyInstance, user: { email: string, password: string }, remoteAddress?: string): Promise<string> {
  const response = await passwordLogin(app, user, remoteAddress)
  assert.equal(response.statusCode, 403, response.body)
  assert.equal(json(response).detail, 'MFA required')
  return json(response).mfa_token
}

export function mfaLogin (app: FastifyInstance, payload: Record<string, unknown>, remoteAddress?: string) {
  return app.inject({ method: 'POST', url: '/users/login/mfa', payload, remoteAddress })
}

export function decodeClaims (token: string): any {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'))
}
