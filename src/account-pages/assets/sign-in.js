// /account/sign-in and /account/passkeys: sign in with a passkey (no username), or with email and
// password and the second step; then list, add and remove the account's passkeys. The tokens
// live in this module's memory only: closing or reloading the page signs out.
import { busy, busyButton, callApi, main, postJson, problemText, show, showErrors } from './account.js'
import { browserSupportsWebAuthn, startAuthentication, startRegistration } from './webauthn/index.js'

const $ = (id) => document.getElementById(id)
const summary = $('error-summary')
const heading = document.querySelector('h1')
const titleSuffix = document.title.slice(heading.textContent.length)
const startTitle = heading.textContent
const signInSection = $('sign-in')
const secondStep = $('second-step')
const account = $('account')
const sections = [signInSection, secondStep, account]
const notice = $('notice')
const email = $('email')
const password = $('password')
const code = $('code')
const passkeyName = $('passkey-name')

/** The token pair of this sign-in, and the challenge of a sign-in waiting for its second step: memory only. */
let tokens = null
let mfaToken = null

// WebAuthn works only where the browser is on the RP ID's origins (never on http://127.0.0.1):
// elsewhere, say where it does work instead of offering a button that fails.
const origins = (main.dataset.origins || '').split(' ').filter(Boolean)
const passkeysHere = browserSupportsWebAuthn() && origins.includes(location.origin)

function describeElsewhere (element) {
  element.replaceChildren()
  if (!browserSupportsWebAuthn()) {
    element.textContent = 'This browser cannot use passkeys. Use another browser, or sign in with your email and password.'
  } else if (origins.length === 0) {
    element.textContent = 'Passkeys are not set up on this server.'
  } else {
    const link = document.createElement('a')
    link.href = origins[0] + location.pathname
    link.textContent = link.href
    element.append('Passkeys work on this page at ', link, ' (browsers allow them only on the site\'s own name).')
  }
  element.hidden = false
}

if (!passkeysHere) {
  $('passkey-button').hidden = true
  describeElsewhere($('passkey-elsewhere'))
  describeElsewhere($('add-elsewhere'))
  $('add-form').hidden = true
}

function setHeading (text) {
  heading.textContent = text
  document.title = text + titleSuffix
}

function say (text) {
  notice.textContent = text
  notice.hidden = !text
}

/** Why a browser ceremony ended without a passkey, in the person's terms. */
function ceremonyProblem (error, adding) {
  if (error?.name === 'NotAllowedError' || error?.name === 'AbortError') {
    return adding
      ? 'No passkey was made: the request was cancelled or timed out, or your device did not confirm it was you. Try again.'
      : 'No passkey was used: the request was cancelled or timed out, or your device did not confirm it was you (with its screen lock, fingerprint or face). Try again.'
  }
  if (error?.name === 'InvalidStateError') return 'This device already holds a passkey for your account: you can sign in with it.'
  if (error?.name === 'SecurityError') return 'Passkeys do not work at this address.'
  return `The passkey did not work: ${error?.message || 'unknown error'}`
}

function showSignIn (reason = '') {
  tokens = null
  mfaToken = null
  setHeading(startTitle)
  const text = reason || (main.dataset.start === 'passkeys' ? 'Sign in to see and change your passkeys.' : '')
  $('sign-in-reason').textContent = text
  $('sign-in-reason').hidden = !text
  show(signInSection, sections)
}

/** A call with this sign-in's access token; one refresh when it has expired; back to signing in when the session ended. */
async function api (method, path, body) {
  let result = await callApi(method, path, { token: tokens?.access_token, body })
  if (result.status === 401 && tokens?.refresh_token) {
    const refreshed = await postJson('../users/refresh', { refresh_token: tokens.refresh_token })
    if (refreshed.status === 200) {
      tokens = refreshed.body
      result = await callApi(method, path, { token: tokens.access_token, body })
    }
  }
  if (result.status === 401) {
    showErrors(summary, [])
    say('')
    showSignIn('Your session has ended. Sign in again.')
  }
  return result
}

/** A sign-in that needs to be more recent (or at aal2) for this change: sign in again. */
function needsFreshSignIn (result) {
  if (result.status !== 403) return false
  const detail = String(result.body.detail)
  const tooOld = detail.startsWith('Recent login required')
  if (!tooOld && detail !== 'This action needs a second factor') return false
  showErrors(summary, [])
  showSignIn(tooOld
    ? 'For your safety, changing your passkeys needs a sign-in from the last few minutes. Sign in again.'
    : 'Changing your passkeys needs a sign-in with your second factor. Sign in again.')
  return true
}

async function signedIn (pair, message) {
  tokens = pair
  mfaToken = null
  // Nothing typed stays in the page once it is used.
  email.value = ''
  password.value = ''
  code.value = ''
  const me = await api('GET', '../users/me')
  if (me.status !== 200) return
  $('account-name').textContent = `${me.body.username} (${me.body.email})`
  $('recovery-codes').hidden = true
  setHeading(main.dataset.signedInTitle)
  // The address bar names the page now shown; a reload of it asks to sign in again.
  if (main.dataset.start !== 'passkeys') history.replaceState(null, '', 'passkeys')
  showErrors(summary, [])
  say(message)
  await loadPasskeys()
  show(account, sections)
}

function refuseSignIn (result, fields = []) {
  if (result.status === 403 && result.body.detail === 'Email not verified') {
    return showErrors(summary, [{ field: null, text: 'Verify your email address before you sign in: open the link we emailed you.', link: { href: 'verify-email', text: 'Get a new link' } }])
  }
  if (result.status === 401 && fields.length > 0) {
    return showErrors(summary, fields.map((field) => ({ field, text: 'Enter the email address and password of your account' })))
  }
  showErrors(summary, [{ field: null, text: problemText(result) }])
}

async function signInWithPasskey (button) {
  say('')
  showErrors(summary, [])
  await busyButton(button, 'Waiting for your passkey…', async () => {
    const options = await postJson('../users/login/passkey/options', {})
    if (options.status !== 200) return showErrors(summary, [{ field: null, text: problemText(options) }])
    let response
    try {
      response = await startAuthentication({ optionsJSON: options.body })
    } catch (error) {
      return showErrors(summary, [{ field: null, text: ceremonyProblem(error, false) }])
    }
    const result = await postJson('../users/login/passkey', { response })
    if (result.status === 200) return signedIn(result.body, 'You signed in with your passkey.')
    refuseSignIn(result)
  })
}

function askSecondFactor (challenge) {
  mfaToken = challenge.mfa_token
  const methods = challenge.methods || []
  const codes = methods.includes('totp') || methods.includes('recovery_code')
  $('code-form').hidden = !codes
  $('code-label').textContent = methods.includes('totp') ? 'Code from your authenticator app, or a recovery code' : 'One of your recovery codes'
  $('code-hint').textContent = methods.includes('totp')
    ? 'The 6 digits your app shows now, or one of the recovery codes you saved (such as 7k2m-9qxp-4hdw-r3tz).'
    : 'One of the codes you saved when you set up your passkey (such as 7k2m-9qxp-4hdw-r3tz). Each works once.'
  $('second-step-text').textContent = methods.includes('passkey') && !methods.includes('totp')
    ? 'Your account is protected by a passkey. Use it, or one of your recovery codes.'
    : 'Your account has two-factor authentication.'
  $('second-step-passkey').hidden = !(methods.includes('passkey') && passkeysHere)
  showErrors(summary, [])
  show(secondStep, sections)
  if (codes) code.focus()
}

$('passkey-button').addEventListener('click', (event) => signInWithPasskey(event.currentTarget))
$('second-step-passkey-button').addEventListener('click', (event) => signInWithPasskey(event.currentTarget))
$('second-step-cancel').addEventListener('click', () => {
  showErrors(summary, [])
  showSignIn()
})

$('password-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  say('')
  const errors = []
  if (!/^[^@\s]+@[^@\s]+$/.test(email.value.trim())) errors.push({ field: email, text: 'Enter your email address, like name@example.com' })
  if (password.value === '') errors.push({ field: password, text: 'Enter your password' })
  if (errors.length > 0) return showErrors(summary, errors)
  const result = await busy(event.target, 'Signing in…', () => postJson('../users/login', { email: email.value.trim(), password: password.value }))
  if (result.status === 200) return signedIn(result.body, 'You signed in.')
  if (result.status === 403 && result.body.detail === 'MFA required') return askSecondFactor(result.body)
  refuseSignIn(result, [email, password])
})

$('code-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  const raw = code.value.trim()
  if (raw === '') return showErrors(summary, [{ field: code, text: 'Enter the code from your authenticator app, or a recovery code' }])
  const payload = /^[0-9]{6}$/.test(raw.replace(/[\s-]/g, '')) ? { mfa_token: mfaToken, code: raw } : { mfa_token: mfaToken, recovery_code: raw }
  const result = await busy(event.target, 'Checking…', () => postJson('../users/login/mfa', payload))
  if (result.status === 200) return signedIn(result.body, 'You signed in.')
  const detail = String(result.body.detail)
  if (result.status === 400 || detail === 'Invalid code' || detail === 'Invalid recovery code') {
    return showErrors(summary, [{ field: code, text: result.status === 400 ? detail.replace(/^(code|recovery_code): /, 'The code ') : 'The code is not right. Check it and try again' }])
  }
  if (result.status === 401) {
    showSignIn('Your sign-in took too long, or had too many wrong codes. Sign in again.')
    return
  }
  showErrors(summary, [{ field: null, text: problemText(result) }])
})

const dateText = (iso) => iso ? new Date(iso).toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' }) : 'Never'

async function loadPasskeys () {
  const result = await api('GET', '../users/me/passkeys')
  if (result.status !== 200) return showErrors(summary, [{ field: null, text: problemText(result) }])
  const rows = $('passkey-rows')
  rows.replaceChildren()
  for (const passkey of result.body) {
    const row = document.createElement('tr')
    const name = document.createElement('td')
    name.textContent = passkey.name
    if (passkey.current) {
      const tag = document.createElement('span')
      tag.className = 'tag'
      tag.textContent = 'this sign-in'
      name.append(tag)
    }
    const added = document.createElement('td')
    added.textContent = dateText(passkey.created_at)
    const used = document.createElement('td')
    used.textContent = dateText(passkey.last_used_at)
    const action = document.createElement('td')
    const remove = document.createElement('button')
    remove.type = 'button'
    remove.className = 'button button--warning button--small'
    remove.textContent = 'Remove'
    remove.setAttribute('aria-label', `Remove the passkey ${passkey.name}`)
    remove.addEventListener('click', () => removePasskey(passkey, remove))
    action.append(remove)
    row.append(name, added, used, action)
    rows.append(row)
  }
  $('passkey-table').hidden = result.body.length === 0
  $('no-passkeys').hidden = result.body.length !== 0
}

async function removePasskey (passkey, button) {
  say('')
  const warning = passkey.current ? ' You signed in with it: this page will sign you out.' : ''
  if (!window.confirm(`Remove the passkey "${passkey.name}"? It will no longer sign in to your account.${warning}`)) return
  const result = await busyButton(button, 'Removing…', () => api('DELETE', `../users/me/passkeys/${passkey.id}`))
  if (result.status === 401) return
  if (needsFreshSignIn(result)) return
  if (result.status !== 204) return showErrors(summary, [{ field: null, text: problemText(result) }])
  showErrors(summary, [])
  if (passkey.current) {
    showSignIn(`You removed the passkey "${passkey.name}" that you signed in with, so you were signed out. Sign in again.`)
    return
  }
  say(`The passkey "${passkey.name}" was removed.`)
  await loadPasskeys()
  notice.focus()
}

$('add-form').addEventListener('submit', async (event) => {
  event.preventDefault()
  say('')
  const name = passkeyName.value.trim()
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return showErrors(summary, [{ field: passkeyName, text: 'The name cannot contain control characters' }])
  await busy(event.target, 'Waiting for your device…', async () => {
    const options = await api('POST', '../users/me/passkeys/options')
    if (options.status === 401 || needsFreshSignIn(options)) return
    if (options.status !== 200) return showErrors(summary, [{ field: null, text: problemText(options) }])
    let response
    try {
      response = await startRegistration({ optionsJSON: options.body })
    } catch (error) {
      return showErrors(summary, [{ field: null, text: ceremonyProblem(error, true) }])
    }
    const result = await api('POST', '../users/me/passkeys', name ? { response, name } : { response })
    if (result.status === 401 || needsFreshSignIn(result)) return
    if (result.status !== 201) return showErrors(summary, [{ field: null, text: problemText(result) }])
    passkeyName.value = ''
    showErrors(summary, [])
    say(`The passkey "${result.body.name}" was added. You can sign in with it now.`)
    await loadPasskeys()
    const codes = result.body.recovery_codes
    if (codes) {
      const list = $('recovery-code-list')
      list.replaceChildren(...codes.map((text) => {
        const item = document.createElement('li')
        item.textContent = text
        return item
      }))
      $('recovery-codes').hidden = false
      $('recovery-codes').focus()
    } else {
      notice.focus()
    }
  })
})

$('sign-out').addEventListener('click', async () => {
  if (tokens) await callApi('POST', '../users/logout', { token: tokens.access_token })
  showErrors(summary, [])
  say('You signed out.')
  showSignIn()
})

notice.setAttribute('tabindex', '-1')
showSignIn()
