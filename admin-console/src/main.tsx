import { render } from 'preact'
import { App } from './app.js'

const root = document.getElementById('console')!
// The <noscript> fallback goes; the app takes its place.
root.replaceChildren()
render(<App />, root)
