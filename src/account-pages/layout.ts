// One layout for every account page: the product name, a skip link, the page's heading and
// body, the one stylesheet and the page's script (an ES module from our own origin; the CSP
// allows nothing inline and nothing from elsewhere).

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** Text made safe for HTML content and attribute values. */
export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, (ch) => ESCAPES[ch])
}

/** Markup that is already safe (built by `html`), as opposed to text to escape. */
export class SafeHtml {
  constructor (readonly value: string) {}
  toString (): string {
    return this.value
  }
}

/** A template tag: interpolated values are escaped unless they are SafeHtml (or arrays of it). */
export function html (strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0]
  values.forEach((value, index) => {
    const parts = Array.isArray(value) ? value : [value]
    out += parts.map((part) => part instanceof SafeHtml ? part.value : escapeHtml(part ?? '')).join('') + strings[index + 1]
  })
  return new SafeHtml(out)
}

export interface Page {
  appName: string
  title: string
  /** The page's script in assets/, without .js. */
  script: string
  /** data-* attributes of <main>: settings the script reads (never a secret). */
  data?: Record<string, string | number>
  body: SafeHtml
}

export function renderPage (page: Page): string {
  const data = Object.entries(page.data ?? {}).map(([key, value]) => html` data-${key}="${value}"`)
  return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${page.title} - ${page.appName}</title>
<link rel="stylesheet" href="assets/account.css">
<script type="module" src="assets/${page.script}.js"></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to main content</a>
<header class="site-header"><div class="wrap"><span class="app-name">${page.appName}</span></div></header>
<main id="main" class="wrap"${data}>
<h1>${page.title}</h1>
<noscript><p class="notice">This page needs JavaScript to read the link you opened. Turn JavaScript on for this site, or open the link in another browser.</p></noscript>
<div class="error-summary" id="error-summary" role="alert" tabindex="-1" aria-labelledby="error-summary-title" hidden>
<h2 id="error-summary-title">There is a problem</h2>
<ul></ul>
</div>
${page.body}
</main>
</body>
</html>
`.value
}

/** The "send me a new link" form both pages offer, with its confirmation. */
export function linkRequestForm (options: { title: string, button: string }): SafeHtml {
  return html`<h2 id="request-title">${options.title}</h2>
<p id="request-reason" class="lead"></p>
<form id="request-form" novalidate>
<div class="field">
<label for="email">Email address</label>
<span class="hint" id="email-hint">The address of your account. We send the link there.</span>
<p class="error-message" id="email-error" hidden></p>
<input id="email" name="email" type="email" autocomplete="email" spellcheck="false" aria-describedby="email-hint email-error">
</div>
<button class="button" type="submit">${options.button}</button>
</form>
<div id="requested" class="panel" hidden>
<h2>Check your email</h2>
<p id="requested-text"></p>
</div>`
}
