import type { FastifyBaseLogger } from 'fastify'
import type { MailConfig } from '../config.js'

export interface OutgoingEmail {
  to: string
  subject: string
  text: string
  html: string
}

/** Delivers one email or throws; the outbox worker decides about retries. */
export interface Transport {
  kind: 'smtp' | 'log'
  send: (email: OutgoingEmail) => Promise<void>
  close: () => void
}

/**
 * SMTP through nodemailer when SMTP_URL is set (smtps:// is TLS from the first byte; smtp:// uses
 * STARTTLS whenever the server offers it), otherwise the development transport, which writes
 * every email whole to the log at info level, its link included: the only log line that ever
 * carries a token, and only while no SMTP server is configured.
 */
export async function createTransport (mail: MailConfig, log: FastifyBaseLogger): Promise<Transport> {
  if (mail.smtpUrl === undefined) {
    return {
      kind: 'log',
      send: async (email) => {
        log.info({ email: { from: mail.from, to: email.to, subject: email.subject, text: email.text } }, 'email (logged, not sent: SMTP_URL is not set)')
      },
      close: () => {}
    }
  }
  // Loaded only when configured, as pg and ioredis are.
  const nodemailer = await import('nodemailer')
  const timeoutMs = mail.sendTimeout * 1000
  const transporter = nodemailer.createTransport({
    url: mail.smtpUrl,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs
  }, { from: mail.from })
  return {
    kind: 'smtp',
    send: async (email) => {
      await transporter.sendMail(email)
    },
    close: () => transporter.close()
  }
}
