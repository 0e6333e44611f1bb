// /account/verify-email#token=...: reading the page changes nothing; pressing the button (a POST) verifies.
import { busy, postJson, problemText, show, showErrors, takeToken, wireLinkRequest } from './account.js'

const token = takeToken()
const summary = document.getElementById('error-summary')
const confirm = document.getElementById('confirm')
const done = document.getElementById('done')
const request = document.getElementById('request')
const requestReason = document.getElementById('request-reason')
const sections = [confirm, done, request]

function askForNewLink (reason) {
  requestReason.textContent = reason
  show(request, sections)
}

if (token) {
  show(confirm, sections)
  document.getElementById('confirm-form').addEventListener('submit', async (event) => {
    event.preventDefault()
    const result = await busy(event.target, 'Verifying…', () => postJson('../users/verify-email/confirm', { token }))
    if (result.status === 200) {
      showErrors(summary, [])
      show(done, sections)
    } else if (result.status === 400) {
      showErrors(summary, [])
      askForNewLink(result.body.detail === 'Email already registered'
        ? 'Another account registered this email address after you asked to use it, so we could not change your email. Sign in and choose another address.'
        : 'This link has expired or has already been used. Enter your email address and we will send you a new one.')
    } else {
      showErrors(summary, [{ field: null, text: problemText(result) }])
    }
  })
} else {
  askForNewLink('This link is not complete. Open the link from the email again, or ask for a new one.')
}

wireLinkRequest({
  form: document.getElementById('request-form'),
  email: document.getElementById('email'),
  summary,
  sent: document.getElementById('requested'),
  sentText: document.getElementById('requested-text'),
  path: '../users/verify-email/request',
  hide: [document.getElementById('request-form')]
})
