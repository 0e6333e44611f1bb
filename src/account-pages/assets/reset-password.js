// /account/reset-password#token=... and /account/set-password#token=... (an invitation): reading
// the page changes nothing; the form's POST sets the password. The page's words come from main's data.
import { busy, main, postJson, problemText, show, showErrors, takeToken, wireLinkRequest } from './account.js'

const token = takeToken()
const minLength = Number(main.dataset.minLength)
// "Your new password ..." on the reset page, "Your password ..." on the invitation's.
const noun = `Your ${main.dataset.label.toLowerCase()}`
const summary = document.getElementById('error-summary')
const choose = document.getElementById('choose')
const done = document.getElementById('done')
const request = document.getElementById('request')
const requestReason = document.getElementById('request-reason')
const password = document.getElementById('password')
const again = document.getElementById('password-again')
const sections = [choose, done, request]

function askForNewLink (reason) {
  requestReason.textContent = reason
  requestReason.hidden = false
  show(request, sections)
}

/** The checks the browser can make; the service has the last word (common passwords, your name). */
function formErrors () {
  const errors = []
  if ([...password.value].length < minLength) errors.push({ field: password, text: `${noun} must be at least ${minLength} characters long` })
  else if (again.value !== password.value) errors.push({ field: again, text: 'The two passwords do not match' })
  return errors
}

if (token) {
  show(choose, sections)
  password.focus()
  document.getElementById('choose-form').addEventListener('submit', async (event) => {
    event.preventDefault()
    const errors = formErrors()
    if (errors.length > 0) return showErrors(summary, errors)
    const result = await busy(event.target, main.dataset.busy, () =>
      postJson('../users/password-reset/confirm', { token, new_password: password.value }))
    if (result.status === 200) {
      password.value = ''
      again.value = ''
      showErrors(summary, [])
      show(done, sections)
    } else if (result.status === 400 && result.body.detail === 'Invalid or expired token') {
      showErrors(summary, [])
      askForNewLink('This link has expired or has already been used. Enter your email address and we will send you a new one.')
    } else if (result.status === 400) {
      // The password policy's reason ("password: is one of the most commonly used passwords..."); the link still works.
      const reason = String(result.body.detail).replace(/^password: /, '')
      showErrors(summary, [{ field: password, text: `${noun} ${reason}` }])
    } else {
      showErrors(summary, [{ field: null, text: problemText(result) }])
    }
  })
} else {
  show(request, sections)
}

wireLinkRequest({
  form: document.getElementById('request-form'),
  email: document.getElementById('email'),
  summary,
  sent: document.getElementById('requested'),
  sentText: document.getElementById('requested-text'),
  path: '../users/password-reset/request',
  hide: [document.getElementById('request-form'), requestReason]
})
