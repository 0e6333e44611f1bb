import type { WebauthnConfig } from '../config.js'
import { html, renderPage } from './layout.js'

// /account/sign-in and /account/passkeys: one document, two ways in. Signing in (a passkey, or
// email and password with the second step when the account has one) leads to the passkeys of
// the account: list, add, remove. The tokens live in the page's memory only (never in storage
// or a cookie): closing or reloading the page signs out. The passkey ceremonies need
// JavaScript (WebAuthn is a browser API), so these pages are a script's; without it they say so.

export type SignInStart = 'sign-in' | 'passkeys'

const TITLES: Record<SignInStart, string> = { 'sign-in': 'Sign in', passkeys: 'Your passkeys' }

export function renderSignInPage (options: { appName: string, start: SignInStart, webauthn: WebauthnConfig }): string {
  const { appName, start, webauthn } = options
  return renderPage({
    appName,
    title: TITLES[start],
    script: 'sign-in',
    noscript: 'Signing in here needs JavaScript: passkeys are a feature of the browser that only a script can use. Turn JavaScript on for this site.',
    // What the script needs to tell whether passkeys can work where the page was opened.
    data: { start, origins: webauthn.origins.join(' '), 'signed-in-title': TITLES.passkeys },
    body: html`<div id="notice" class="notice" role="status" hidden></div>
<section id="sign-in" hidden>
<p id="sign-in-reason" class="lead" hidden></p>
<div id="passkey-sign-in" class="block">
<h2>Sign in with a passkey</h2>
<p>Use the passkey saved on this device, on your phone or on a security key. You do not need your email address or password.</p>
<p id="passkey-elsewhere" class="notice" hidden></p>
<button class="button" type="button" id="passkey-button">Sign in with a passkey</button>
</div>
<h2 id="password-title">Sign in with your email and password</h2>
<form id="password-form" class="block" novalidate aria-labelledby="password-title">
<div class="field">
<label for="email">Email address</label>
<p class="error-message" id="email-error" hidden></p>
<input id="email" name="email" type="email" autocomplete="username" spellcheck="false" aria-describedby="email-error">
</div>
<div class="field">
<label for="password">Password</label>
<p class="error-message" id="password-error" hidden></p>
<input id="password" name="password" type="password" autocomplete="current-password" aria-describedby="password-error">
</div>
<button class="button button--secondary" type="submit">Sign in</button>
</form>
<p class="footer"><a href="reset-password">Forgotten your password?</a></p>
</section>
<section id="second-step" hidden>
<h2>Confirm it is you</h2>
<p id="second-step-text">Your account has two-factor authentication.</p>
<form id="code-form" class="block" novalidate>
<div class="field">
<label for="code" id="code-label">Code from your authenticator app, or a recovery code</label>
<span class="hint" id="code-hint">The 6 digits your app shows now, or one of the recovery codes you saved (such as 7k2m-9qxp-4hdw-r3tz).</span>
<p class="error-message" id="code-error" hidden></p>
<input id="code" name="code" type="text" autocomplete="one-time-code" spellcheck="false" autocapitalize="none" aria-describedby="code-hint code-error">
</div>
<button class="button" type="submit">Continue</button>
</form>
<div id="second-step-passkey" class="block" hidden>
<p>Or use one of your passkeys: it signs you in on its own.</p>
<button class="button button--secondary" type="button" id="second-step-passkey-button">Use a passkey</button>
</div>
<p><button class="link-button" type="button" id="second-step-cancel">Start again</button></p>
</section>
<section id="account" hidden>
<p>You are signed in as <strong id="account-name"></strong>. <button class="link-button" type="button" id="sign-out">Sign out</button></p>
<div id="recovery-codes" class="panel" tabindex="-1" hidden>
<h2>Save your recovery codes</h2>
<p>Your password alone no longer signs you in: it also needs a passkey, or one of these codes if you lose your passkeys. Each code works once. Keep them somewhere safe, such as a password manager. We will not show them again.</p>
<ul id="recovery-code-list" class="codes"></ul>
</div>
<h2 id="passkeys-title">Passkeys</h2>
<p id="no-passkeys" hidden>You have no passkeys yet. Add one to sign in with this device's screen lock, fingerprint or face instead of your password.</p>
<table id="passkey-table" class="table" aria-labelledby="passkeys-title" hidden>
<thead><tr><th scope="col">Name</th><th scope="col">Added</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
<tbody id="passkey-rows"></tbody>
</table>
<h2 id="add-title">Add a passkey</h2>
<p id="add-elsewhere" class="notice" hidden></p>
<form id="add-form" class="block" novalidate aria-labelledby="add-title">
<div class="field">
<label for="passkey-name">Name (optional)</label>
<span class="hint" id="passkey-name-hint">A name to tell your passkeys apart, such as "Work laptop" or "Phone".</span>
<p class="error-message" id="passkey-name-error" hidden></p>
<input id="passkey-name" name="passkey-name" type="text" maxlength="64" autocomplete="off" aria-describedby="passkey-name-hint passkey-name-error">
</div>
<button class="button" type="submit">Add a passkey</button>
</form>
<p class="footer">This page keeps your sign-in in its memory only: closing or reloading it signs you out.</p>
</section>`
  })
}
