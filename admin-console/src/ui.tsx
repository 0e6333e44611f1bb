import type { ComponentChildren, JSX } from 'preact'
import { useEffect, useId, useRef, useState } from 'preact/hooks'
import { ApiError } from './api.js'

// The few building blocks every screen shares, after the GOV.UK design system's patterns:
// an error summary at the top that takes focus, each field's message beside it, one polite live
// region that reads out what changed.

// ---- Live region ---------------------------------------------------------------------------

let setAnnouncement: (text: string) => void = () => {}

/** Reads `text` out to screen readers (results found, action done) without moving focus. */
export function announce (text: string): void {
  // Emptied first, so the same sentence twice is read twice.
  setAnnouncement('')
  setTimeout(() => setAnnouncement(text), 50)
}

export function LiveRegion () {
  const [text, setText] = useState('')
  setAnnouncement = setText
  return <div class="visually-hidden" role="status" aria-live="polite" aria-atomic="true" data-testid="live-region">{text}</div>
}

// ---- Errors ---------------------------------------------------------------------------------

export interface FieldError {
  /** The id of the input the message is about; none for a message about the whole form. */
  field?: string
  message: string
}

/** The message to show for a failed call: the API's own detail, plus when to retry after a 429. */
export function messageOf (error: unknown): string {
  if (error instanceof ApiError) {
    if (error.status === 429 && error.retryAfter !== undefined && !/\d+ seconds?/.test(error.detail)) {
      return `${error.detail} Try again in ${error.retryAfter} seconds.`
    }
    return error.detail
  }
  return 'Something went wrong in the console. Reload the page and try again.'
}

function focusField (id: string) {
  const element = document.getElementById(id)
  element?.focus()
  element?.scrollIntoView({ block: 'center' })
}

/** "There is a problem": a list of what to fix, each linking to its field. Takes focus when it appears. */
export function ErrorSummary ({ errors, title = 'There is a problem' }: { errors: FieldError[], title?: string }) {
  const ref = useRef<HTMLDivElement>(null)
  // A screen can show two (its own and a form's): each needs its own id.
  const titleId = useId()
  useEffect(() => {
    if (errors.length > 0) ref.current?.focus()
  }, [errors])
  if (errors.length === 0) return null
  return (
    <div class="error-summary" role="alert" aria-labelledby={titleId} tabIndex={-1} ref={ref}>
      <h2 class="error-summary__title" id={titleId}>{title}</h2>
      <ul class="error-summary__list">
        {errors.map((error, index) => (
          <li key={index}>
            {error.field
              // The fragment would be taken as a screen change: move focus ourselves.
              ? <a href={`#${error.field}`} onClick={(event) => { event.preventDefault(); focusField(error.field!) }}>{error.message}</a>
              : error.message}
          </li>
        ))}
      </ul>
    </div>
  )
}

export function errorFor (errors: FieldError[], field: string): string | undefined {
  return errors.find((error) => error.field === field)?.message
}

// ---- Fields ---------------------------------------------------------------------------------

interface FieldProps {
  id: string
  label: ComponentChildren
  hint?: ComponentChildren
  error?: string
  children: (describedBy: string | undefined, invalid: boolean) => ComponentChildren
  class?: string
}

/** Label, hint and error message wired to the control by id and aria-describedby. */
export function Field ({ id, label, hint, error, children, class: className }: FieldProps) {
  const describedBy = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined
  return (
    <div class={`field${error ? ' field--error' : ''}${className ? ` ${className}` : ''}`}>
      <label class="label" for={id}>{label}</label>
      {hint && <div class="hint" id={`${id}-hint`}>{hint}</div>}
      {error && <p class="field-error" id={`${id}-error`}><span class="visually-hidden">Error:</span> {error}</p>}
      {children(describedBy, error !== undefined)}
    </div>
  )
}

// ---- Headings and notices -------------------------------------------------------------------

// The page's first screen leaves focus where the browser put it (the skip link comes first);
// every later screen moves it to its heading.
let firstScreen = true

/** A screen's h1; it takes focus when the screen changes, so screen readers announce where we are. */
export function PageHeading ({ children, caption }: { children: ComponentChildren, caption?: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null)
  useEffect(() => {
    if (firstScreen) firstScreen = false
    else ref.current?.focus({ preventScroll: true })
  }, [])
  return (
    <>
      {caption && <span class="caption">{caption}</span>}
      <h1 class="heading-xl" tabIndex={-1} ref={ref}>{children}</h1>
    </>
  )
}

/** A success message after an action (green bar); read out through the live region. */
export function SuccessBanner ({ children }: { children: ComponentChildren }) {
  return (
    <div class="banner banner--success" data-testid="success-banner">
      <p class="banner__text">{children}</p>
    </div>
  )
}

export function Tag ({ tone, children }: { tone: 'grey' | 'green' | 'red' | 'blue' | 'yellow', children: ComponentChildren }) {
  return <strong class={`tag tag--${tone}`}>{children}</strong>
}

export function Spinner ({ label }: { label: string }) {
  return <p class="loading" aria-busy="true">{label}</p>
}

type ButtonProps = JSX.ButtonHTMLAttributes<HTMLButtonElement> & { variant?: 'primary' | 'secondary' | 'warning' | 'link', busy?: boolean }

/** A real <button>; while busy it stays focusable but says so and ignores clicks. */
export function Button ({ variant = 'primary', busy = false, class: className, children, onClick, type = 'button', ...rest }: ButtonProps) {
  return (
    <button
      {...rest}
      type={type}
      class={`button button--${variant}${className ? ` ${String(className)}` : ''}`}
      aria-disabled={busy ? 'true' : undefined}
      onClick={(event) => {
        if (busy) {
          event.preventDefault()
          return
        }
        onClick?.(event)
      }}
    >
      {children}
    </button>
  )
}
