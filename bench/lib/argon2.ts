// The reference for logins and signups: how fast this machine hashes and verifies with our
// argon2id parameters, in one process, as many at once as the server runs (HASH_CONCURRENCY).
import { hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2'
import { ARGON2_OPTIONS } from '../../src/auth/passwords.js'

/** Verifications (or hashes) per second over `seconds`, `concurrency` at a time. */
export async function rawArgon2 (operation: 'verify' | 'hash', options: { seconds: number, concurrency: number, password: string, hashed: string }): Promise<number> {
  let done = 0
  const deadline = performance.now() + options.seconds * 1000
  const worker = async () => {
    while (performance.now() < deadline) {
      if (operation === 'verify') await argon2Verify(options.hashed, options.password)
      else await argon2Hash(options.password, ARGON2_OPTIONS)
      done++
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  return done / ((performance.now() - started) / 1000)
}

/** An argon2id hash of `password` with the server's parameters. */
export function hashPassword (password: string): Promise<string> {
  return argon2Hash(password, ARGON2_OPTIONS)
}
