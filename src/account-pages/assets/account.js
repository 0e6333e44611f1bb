// Shared by the account pages (ES module, served from our own origin under a strict CSP).

/** The page's main element, which carries the server's settings as data attributes. */
export const main = document.getElementById('main')

/** Reads the link's token from the URL fragment (never sent to the server, never in a Referer) and removes it from the address bar and history. */
export function takeToken () {
  const params = new URLSearchParams(location.hash.slice(1))
  const token = params.get('token')
  if (location.hash) history.replaceState(null, '', location.pathname + location.search)
  return token && /^[A-Za-z0-9_-]{16,128}$/.test(token) ? token : null
}

/** POSTs JSON to an API path relative to this page; resolves with { status, body }, or { status: 0 } when the service cannot be reached. */
export async function postJson (path, payload) {
  try {
    const response = await fetch(new URL(path, location.href), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(payload),
      credentials: 'omit',
      cache: 'no-store'
    })
    let body = {}
    try { body = await response.json() } catch { body = {} }
    return { status: response.status, body, retryAfter: response.headers.get('retry-after') }
  } catch {
    return { status: 0, body: {} }
  }
}

/** What to tell the person when a request failed for a reason that is not theirs to fix in the form. */
export function problemText (result) {
  if (result.status === 0) return 'We could not reach the service. Check your connection and try again.'
  if (result.status === 429) return `Too many attempts from your network. Try again in ${result.retryAfter || 'a few'} seconds.`
  if (result.status >= 500) return 'Something went wrong on our side. Try again in a moment.'
  return typeof result.body.detail === 'string' ? result.body.detail : 'Something went wrong. Try again.'
}

/** Shows one section of the page, hides the others listed, and moves focus to it for screen readers and keyboards. */
export function show (section, others = []) {
  for (const other of others) other.hidden = true
  section.hidden = false
  section.setAttribute('tabindex', '-1')
  section.focus()
}

/**
 * GOV.UK-style errors: a summary at the top linking to each field, and the message beside the
 * field. errors: [{ field: HTMLInputElement | null, text }]. An empty list clears them.
 */
export function showErrors (summary, errors) {
  for (const marked of document.querySelectorAll('.field--error')) {
    marked.classList.remove('field--error')
    const message = marked.querySelector('.error-message')
    if (message) { message.hidden = true; message.textContent = '' }
    const input = marked.querySelector('input')
    if (input) input.removeAttribute('aria-invalid')
  }
  const list = summary.querySelector('ul')
  list.replaceChildren()
  if (errors.length === 0) { summary.hidden = true; return }
  for (const { field, text } of errors) {
    const item = document.createElement('li')
    if (field) {
      const link = document.createElement('a')
      link.href = `#${field.id}`
      link.textContent = text
      link.addEventListener('click', (event) => { event.preventDefault(); field.focus() })
      item.append(link)
      const wrapper = field.closest('.field')
      wrapper.classList.add('field--error')
      const message = wrapper.querySelector('.error-message')
      message.textContent = text
      message.hidden = false
      field.setAttribute('aria-invalid', 'true')
    } else {
      item.textContent = text
    }
    list.append(item)
  }
  summary.hidden = false
  summary.focus()
}

/** Disables a form's button while a request runs (no double submits), with a busy label. */
export async function busy (form, label, work) {
  const button = form.querySelector('button[type="submit"]')
  const idle = button.textContent
  button.disabled = true
  button.textContent = label
  try {
    return await work()
  } finally {
    button.disabled = false
    button.textContent = idle
  }
}

/**
 * The "send me a new link" form: POSTs the address to `path` and shows the service's answer,
 * which is the same whether or not an account has that address.
 */
export function wireLinkRequest ({ form, email, summary, sent, sentText, path, hide = [] }) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault()
    const value = email.value.trim()
    if (!/^[^@\s]+@[^@\s]+$/.test(value)) {
      showErrors(summary, [{ field: email, text: 'Enter an email address in the correct format, like name@example.com' }])
      return
    }
    const result = await busy(form, 'Sending…', () => postJson(path, { email: value }))
    if (result.status !== 202) {
      showErrors(summary, [{ field: null, text: problemText(result) }])
      return
    }
    showErrors(summary, [])
    sentText.textContent = `${result.body.detail}. It can take a few minutes to arrive; check your spam folder too.`
    show(sent, hide)
  })
}
