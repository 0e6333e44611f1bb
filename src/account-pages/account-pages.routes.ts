import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { html, linkRequestForm, renderPage } from './layout.js'

// The pages the emailed links open, served by the service itself so no frontend is needed:
// /account/verify-email#token=... and /account/reset-password#token=... The token is in the
// fragment, which the browser never sends: a GET (or a mail scanner's prefetch) of a page
// changes nothing; the person's button press is the POST that uses the token.

/** Nothing inline, nothing from another origin, no framing, no referrer. */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const ASSETS_DIR = join(import.meta.dirname, 'assets')
const CONTENT_TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' }

function sendPage (reply: FastifyReply, page: string): FastifyReply {
  return reply.headers({
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': PAGE_CSP,
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
    'x-frame-options': 'DENY',
    'cross-origin-opener-policy': 'same-origin'
  }).send(page)
}

const accountPages: FastifyPluginAsync = async (app) => {
  const { appName, passwordMinLength } = app.config
  // Read once at start: the set of files served is fixed, and no path from a request reaches the disk.
  const assets = new Map(readdirSync(ASSETS_DIR)
    .filter((name) => CONTENT_TYPES[name.slice(name.lastIndexOf('.'))] !== undefined)
    .map((name) => [name, { body: readFileSync(join(ASSETS_DIR, name)), type: CONTENT_TYPES[name.slice(name.lastIndexOf('.'))] }]))

  const verifyPage = renderPage({
    appName,
    title: 'Verify your email address',
    script: 'verify-email',
    body: html`<section id="confirm" hidden>
<p>Press the button to confirm that this email address is yours.</p>
<form id="confirm-form"><button class="button" type="submit">Verify my email address</button></form>
</section>
<section id="done" class="panel" hidden>
<h2>Your email address is verified</h2>
<p>Thank you. You can close this page.</p>
</section>
<section id="request" hidden>
${linkRequestForm({ title: 'Get a new link', button: 'Send me a new link' })}
</section>`
  })

  const resetPage = renderPage({
    appName,
    title: 'Reset your password',
    script: 'reset-password',
    data: { 'min-length': passwordMinLength },
    body: html`<section id="choose" hidden>
<p>Choose a new password. Use at least ${passwordMinLength} characters: a few unrelated words are long and easy to remember.</p>
<form id="choose-form" novalidate>
<div class="field">
<label for="password">New password</label>
<p class="error-message" id="password-error" hidden></p>
<input id="password" name="password" type="password" autocomplete="new-password" aria-describedby="password-error">
</div>
<div class="field">
<label for="password-again">Type it again</label>
<p class="error-message" id="password-again-error" hidden></p>
<input id="password-again" name="password-again" type="password" autocomplete="new-password" aria-describedby="password-again-error">
</div>
<button class="button" type="submit">Change my password</button>
</form>
</section>
<section id="done" class="panel" hidden>
<h2>Your password has been changed</h2>
<p>We signed your account out on every device. Sign in again with your new password.</p>
</section>
<section id="request" hidden>
${linkRequestForm({ title: 'Get a link to reset your password', button: 'Send me a link' })}
</section>`
  })

  app.get('/account/verify-email', { schema: { hide: true } }, (_request, reply) => sendPage(reply, verifyPage))
  app.get('/account/reset-password', { schema: { hide: true } }, (_request, reply) => sendPage(reply, resetPage))
  app.get<{ Params: { name: string } }>('/account/assets/:name', { schema: { hide: true } }, (request, reply) => {
    const asset = assets.get(request.params.name)
    if (asset === undefined) return reply.code(404).send({ detail: 'Not Found' })
    return reply.headers({ 'content-type': asset.type, 'cache-control': 'public, max-age=300' }).send(asset.body)
  })
}

export default accountPages
