import fp from 'fastify-plugin'
import type { Kysely } from 'kysely'
import { Counter, Gauge } from 'prom-client'
import type { Database } from '../db/database.js'
import { normalizeEmail } from '../users/identity.js'
import { hashLinkToken, linkToken, newLinkSeed } from './links.js'
import { createOutboxWorker } from './outbox-worker.js'
import { countByStatus, countQueuedSince, insertOutboxRow, lockRecipient } from './outbox.queries.js'
import type { Templates } from './templates.js'
import { createTransport } from './transport.js'

declare module 'fastify' {
  interface FastifyInstance {
    email: Email
  }
}

export interface EmailMessage {
  /** The template: verify_email, reset_password, password_changed, ... */
  purpose: string
  to: string
  userId: number | null
  /** The template's values; stored with the row, so never a secret. */
  params: Record<string, unknown>
  /** A link carrying a token: the seed it derives from and the URL template with {token}. */
  link?: { seed: string, url: string }
}

/** What features call. Everything else about delivery stays in this folder. */
export interface Email {
  /**
   * Queues an email in the caller's transaction: it is sent after the commit, and never if the
   * transaction rolls back. Never sends inside the request.
   */
  queue: (db: Kysely<Database>, message: EmailMessage, now: string) => Promise<void>
  /**
   * The per-address limits of emails people can ask for (links): at most one of a purpose per
   * minute and five of these purposes per hour. Call in the transaction that would queue it;
   * false means: drop it silently.
   */
  hasRoom: (db: Kysely<Database>, to: string, purpose: string, now: number) => Promise<boolean>
  /**
   * A new link: the seed to pass as `link.seed` and the SHA-256 of the token the email will
   * carry, to store (see links.ts: the token itself exists only in the sent email).
   */
  newLink: () => { seed: string, tokenHash: string }
}

/** Purposes a visitor can ask for, counted together for the hourly limit. */
export const LIMITED_PURPOSES = ['verify_email', 'change_email', 'reset_password'] as const
const PER_PURPOSE_WINDOW_MS = 60_000
const HOURLY_MAX = 5

export interface EmailPluginOptions {
  /** The link key (see links.ts). */
  key: Buffer
  templates: Templates
}

/** The outbox, its worker (started when the app is ready, stopped on close) and its metrics. */
export default fp<EmailPluginOptions>(async (app, { key, templates }) => {
  const { config } = app
  const transport = await createTransport(config.mail, app.log)
  if (transport.kind === 'log') app.log.warn('SMTP_URL is not set: emails are written to the log (info level), not sent')
  else app.log.info({ smtp: config.mail.smtpDisplay }, 'emails are sent over SMTP')

  const registers = [app.metrics.registry]
  const delivered = new Counter({ name: 'emails_sent_total', help: 'Emails handed to the SMTP server (or the log transport)', labelNames: ['purpose'] as const, registers })
  const failed = new Counter({ name: 'email_delivery_failures_total', help: 'Failed delivery attempts; final: the row was marked dead', labelNames: ['purpose', 'final'] as const, registers })
  new Gauge({
    name: 'email_outbox_rows',
    help: 'Emails waiting in the outbox (pending) and given up on (dead)',
    labelNames: ['status'] as const,
    registers,
    // The same table for every worker of a cluster: the largest reading, not their sum.
    aggregator: 'max',
    async collect () {
      const counts = await countByStatus(app.db.kysely)
      this.set({ status: 'pending' }, counts.pending)
      this.set({ status: 'dead' }, counts.dead)
    }
  })

  const worker = createOutboxWorker({
    db: app.db,
    transport,
    templates,
    key,
    config,
    log: app.log.child({ component: 'email-outbox' }),
    now: app.now,
    onOutcome: (purpose, outcome) => {
      if (outcome === 'sent') delivered.inc({ purpose })
      else failed.inc({ purpose, final: String(outcome === 'dead') })
    }
  })

  app.decorate('email', {
    queue: async (db, message, now) => {
      await insertOutboxRow(db, {
        purpose: message.purpose,
        recipient: message.to,
        recipientNormalized: normalizeEmail(message.to),
        userId: message.userId,
        params: message.link ? { ...message.params, link_url: message.link.url } : message.params,
        linkSeed: message.link?.seed ?? null
      }, now)
      worker.wake()
    },
    hasRoom: async (db, to, purpose, now) => {
      const recipient = normalizeEmail(to)
      await lockRecipient(db, app.db.dialect, recipient)
      if (await countQueuedSince(db, recipient, [purpose], new Date(now - PER_PURPOSE_WINDOW_MS).toISOString()) > 0) return false
      return await countQueuedSince(db, recipient, LIMITED_PURPOSES, new Date(now - 3600_000).toISOString()) < HOURLY_MAX
    },
    newLink: () => {
      const seed = newLinkSeed()
      return { seed, tokenHash: hashLinkToken(linkToken(key, seed)) }
    }
  } satisfies Email)

  app.addHook('onReady', async () => worker.start())
  app.addHook('onClose', async () => {
    await worker.stop()
    transport.close()
  })
}, { name: 'email', dependencies: ['db', 'metrics', 'auth'] })
