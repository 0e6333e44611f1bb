import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, sep } from 'node:path'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { html, linkRequestForm, renderPage } from './layout.js'
import { renderSignInPage } from './sign-in.js'

// The pages the emailed links open, served by the service itself so no frontend is needed:
// /account/verify-email#token=... and /account/reset-password#token=... The token is in the
// fragment, which the browser never sends: a GET (or a mail scanner's prefetch) of a page
// changes nothing; the person's button press is the POST that uses the token.
// And /account/sign-in, /account/passkeys: signing in (passkey, or password and second step)
// and managing the account's passkeys (src/account-pages/sign-in.ts).

/** Nothing inline, nothing from another origin, no framing, no referrer. */
export const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
  "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

const ASSETS_DIR = join(import.meta.dirname, 'assets')
const CONTENT_TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' }
const typeOf = (name: string) => CONTENT_TYPES[name.slice(name.lastIndexOf('.'))]

/**
 * @simplewebauthn/browser's ES modules, served from our own origin under assets/webauthn/ (no
 * CDN, no bundler): the same files from the sources under tsx and after `npm ci && npm start`.
 * The package exports only its entry points, so its folder is found from the CommonJS one.
 */
function webauthnBrowserFiles (): Array<[string, string]> {
  const root = dirname(dirname(createRequire(import.meta.url).resolve('@simplewebauthn/browser')))
  const esm = join(root, 'esm')
  return readdirSync(esm, { recursive: true, encoding: 'utf8' })
    .filter((name) => name.endsWith('.js'))
    .map((name) => [`webauthn/${name.split(sep).join('/')}`, join(esm, name)])
}

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
  const files: Array<[string, string]> = [
    ...readdirSync(ASSETS_DIR).filter((name) => typeOf(name) !== undefined).map((name): [string, string] => [name, join(ASSETS_DIR, name)]),
    ...webauthnBrowserFiles()
  ]
  const assets = new Map(files.map(([name, path]) => [name, { body: readFileSync(path), type: typeOf(name) }]))

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

  // Two pages, one script: a reset (a forgotten password) and an invitation (the first password).
  const passwordPage = (words: { title: string, intro: string, label: string, button: string, busy: string, done: string, doneText: string }) => renderPage({
    appName,
    title: words.title,
    script: 'reset-password',
    data: { 'min-length': passwordMinLength, busy: words.busy, label: words.label },
    body: html`<section id="choose" hidden>
<p>${words.intro} Use at least ${passwordMinLength} characters: a few unrelated words are long and easy to remember.</p>
<form id="choose-form" novalidate>
<div class="field">
<label for="password">${words.label}</label>
<p class="error-message" id="password-error" hidden></p>
<input id="password" name="password" type="password" autocomplete="new-password" aria-describedby="password-error">
</div>
<div class="field">
<label for="password-again">Type it again</label>
<p class="error-message" id="password-again-error" hidden></p>
<input id="password-again" name="password-again" type="password" autocomplete="new-password" aria-describedby="password-again-error">
</div>
<button class="button" type="submit">${words.button}</button>
</form>
</section>
<section id="done" class="panel" hidden>
<h2>${words.done}</h2>
<p>${words.doneText}</p>
</section>
<section id="request" hidden>
${linkRequestForm({ title: 'Get a link to reset your password', button: 'Send me a link' })}
</section>`
  })
  const resetPage = passwordPage({
    title: 'Reset your password',
    intro: 'Choose a new password.',
    label: 'New password',
    button: 'Change my password',
    busy: 'Changing your password…',
    done: 'Your password has been changed',
    doneText: 'We signed your account out on every device. Sign in again with your new password.'
  })
  const setPage = passwordPage({
    title: 'Choose your password',
    intro: 'An administrator created your account. Choose the password you will sign in with.',
    label: 'Password',
    button: 'Set my password',
    busy: 'Setting your password…',
    done: 'Your password is set',
    doneText: 'Your account is ready: sign in with your email address or username and this password.'
  })

  const signInPage = renderSignInPage({ appName, start: 'sign-in', webauthn: app.config.webauthn })
  const passkeysPage = renderSignInPage({ appName, start: 'passkeys', webauthn: app.config.webauthn })

  app.get('/account/verify-email', { schema: { hide: true } }, (_request, reply) => sendPage(reply, verifyPage))
  app.get('/account/reset-password', { schema: { hide: true } }, (_request, reply) => sendPage(reply, resetPage))
  app.get('/account/set-password', { schema: { hide: true } }, (_request, reply) => sendPage(reply, setPage))
  app.get('/account/sign-in', { schema: { hide: true } }, (_request, reply) => sendPage(reply, signInPage))
  app.get('/account/passkeys', { schema: { hide: true } }, (_request, reply) => sendPage(reply, passkeysPage))
  app.get<{ Params: { '*': string } }>('/account/assets/*', { schema: { hide: true } }, (request, reply) => {
    // Only names read at start are served: a path from a request never reaches the disk.
    const asset = assets.get(request.params['*'])
    if (asset === undefined) return reply.code(404).send({ detail: 'Not Found' })
    return reply.headers({ 'content-type': asset.type, 'cache-control': 'public, max-age=300' }).send(asset.body)
  })
}

export default accountPages
