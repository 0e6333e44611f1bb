import type { ComponentChildren } from 'preact'
import { useEffect, useRef, useState } from 'preact/hooks'
import {
  ApiError, getUser, listAuditEvents, listSessions, revokeSessions, sendPasswordReset, setRole, suspendUser, unsuspendUser,
  type AdminUser, type AuditEvent, type Me, type Role, type Session
} from './api.js'
import { isSuspended, StatusTag } from './directory.js'
import { describeDetail, describeEventType, describeUserAgent, formatDateTime, formatNumber, plural } from './format.js'
import { userHref } from './router.js'
import { announce, Button, ErrorSummary, errorFor, Field, messageOf, PageHeading, Spinner, SuccessBanner, Tag, type FieldError } from './ui.js'
import { recalledUser, rememberUser } from './user-cache.js'

// One user: profile and status, what an admin can do to the account, its live sessions and what
// the audit log recorded about it. Every action answers with a green banner (read out by the live
// region) or the API's own reason in the error summary (a 409 guard rail says why).

interface Props {
  id: number
  me: Me
  backHref: string
  /** A message from the screen that sent us here ("Invitation sent"). */
  flash?: string
}

const REASON_MAX = 500

export function UserPage ({ id, me, backHref, flash }: Props) {
  const [user, setUser] = useState<AdminUser | undefined>(recalledUser(id))
  const [missing, setMissing] = useState(false)
  const [sessions, setSessions] = useState<Session[]>()
  const [events, setEvents] = useState<AuditEvent[]>()
  const [eventsCursor, setEventsCursor] = useState<string | null>(null)
  const [errors, setErrors] = useState<FieldError[]>([])
  const [success, setSuccess] = useState<string | undefined>(flash)
  const [loadError, setLoadError] = useState<string>()

  async function loadUser (signal?: AbortSignal) {
    try {
      const found = await getUser(id, signal)
      setUser(found)
      rememberUser(found)
    } catch (error) {
      if (signal?.aborted) return
      if (error instanceof ApiError && error.status === 404) setMissing(true)
      else setLoadError(messageOf(error))
    }
  }

  async function loadSessions (signal?: AbortSignal) {
    try {
      setSessions(await listSessions(id, signal))
    } catch (error) {
      if (!signal?.aborted) setLoadError(messageOf(error))
    }
  }

  async function loadEvents (signal?: AbortSignal) {
    try {
      const page = await listAuditEvents(id, undefined, signal)
      setEvents(page.events)
      setEventsCursor(page.next_cursor)
    } catch (error) {
      if (!signal?.aborted) setLoadError(messageOf(error))
    }
  }

  useEffect(() => {
    const controller = new AbortController()
    void loadUser(controller.signal)
    void loadSessions(controller.signal)
    void loadEvents(controller.signal)
    if (flash) announce(flash)
    return () => controller.abort()
  }, [id])

  /** An action succeeded: keep what it answered, say so, and re-read what it changed. */
  async function done (message: string, changed?: AdminUser) {
    setErrors([])
    if (changed) {
      const merged = { ...user, ...changed } as AdminUser
      setUser(merged)
      rememberUser(merged)
    }
    setSuccess(message)
    announce(message)
    await Promise.all([loadUser(), loadSessions(), loadEvents()])
  }

  function failed (error: unknown, field?: string) {
    setSuccess(undefined)
    setErrors([{ field: error instanceof ApiError && error.status === 400 ? field : undefined, message: messageOf(error) }])
  }

  if (missing) {
    return (
      <>
        <BackLink href={backHref} />
        <PageHeading>User not found</PageHeading>
        <p>There is no user with the id {id}. They may have been deleted.</p>
      </>
    )
  }

  const self = user?.id === me.id

  return (
    <>
      <BackLink href={backHref} />
      {success && <SuccessBanner>{success}</SuccessBanner>}
      <ErrorSummary errors={loadError ? [{ message: loadError }, ...errors] : errors} />
      {user === undefined
        ? <><PageHeading>User {id}</PageHeading><Spinner label="Loading the user…" /></>
        : (
          <>
            <div class="user-heading">
              <div class="user-heading__title"><PageHeading caption={user.email}>{user.username}</PageHeading></div>
              <div class="user-heading__tags">
                {self && <Tag tone="yellow">You</Tag>}
                {user.role === 'admin' && <Tag tone="blue">Admin</Tag>}
                <StatusTag user={user} />
              </div>
            </div>
            <div class="layout">
              <div class="layout__main">
                <Profile user={user} />
                <SessionsSection user={user} sessions={sessions} onRevoked={() => done(`All of ${user.username}’s sessions were ended. Their access tokens stopped working.`)} onError={failed} />
                <AuditSection user={user} me={me} events={events} cursor={eventsCursor}
                  onMore={async () => {
                    try {
                      const page = await listAuditEvents(id, eventsCursor ?? undefined)
                      setEvents([...(events ?? []), ...page.events])
                      setEventsCursor(page.next_cursor)
                      announce(`${plural(page.events.length, 'older event', 'older events')} added.`)
                    } catch (error) {
                      failed(error)
                    }
                  }} />
              </div>
              <aside class="layout__side" aria-label="Actions">
                <h2 class="heading-m">Actions</h2>
                {self && <p class="inset inset--narrow">This is your own account. You cannot suspend or demote yourself: another administrator can.</p>}
                {!self && (isSuspended(user)
                  ? <Unsuspend user={user} onDone={(changed) => done(`${user.username} can sign in again.`, changed)} onError={failed} />
                  : <Suspend user={user} onDone={(changed) => done(`${user.username} is suspended and every session of theirs has ended.`, changed)} onError={failed} />)}
                {!self && <ChangeRole user={user} onDone={(changed, role) => done(`${user.username} is now ${role === 'admin' ? 'an administrator' : 'a user'}. Their sessions were ended.`, changed)} onError={failed} />}
                <PasswordReset user={user} onDone={(revoked) => done(`A password reset link was sent to ${user.email}.${revoked ? ' Their sessions were ended.' : ''}`)} onError={failed} />
              </aside>
            </div>
          </>
          )}
    </>
  )
}

function BackLink ({ href }: { href: string }) {
  return <a class="back-link" href={href}>Back to users</a>
}

function SummaryRow ({ label, children }: { label: string, children: ComponentChildren }) {
  return (
    <div class="summary-list__row">
      <dt class="summary-list__key">{label}</dt>
      <dd class="summary-list__value">{children}</dd>
    </div>
  )
}

function When ({ iso, empty = '–' }: { iso: string | null, empty?: string }) {
  return iso ? <time dateTime={iso} title={iso}>{formatDateTime(iso)}</time> : <span class="secondary">{empty}</span>
}

function Profile ({ user }: { user: AdminUser }) {
  const suspended = isSuspended(user)
  return (
    <section aria-labelledby="profile-heading" class="section">
      <h2 class="heading-m" id="profile-heading">Account</h2>
      <dl class="summary-list" data-testid="profile">
        <SummaryRow label="User ID">{user.id}</SummaryRow>
        <SummaryRow label="Username">{user.username}</SummaryRow>
        <SummaryRow label="Email">
          {user.email}{' '}
          {user.email_verified ? <Tag tone="green">Verified</Tag> : <Tag tone="grey">Not verified</Tag>}
        </SummaryRow>
        <SummaryRow label="Role">{user.role === 'admin' ? 'Administrator' : 'User'}</SummaryRow>
        <SummaryRow label="Status">
          {suspended
            ? (
              <>
                <p class="summary-list__line"><strong>Suspended</strong>{user.suspended_until ? <> until <When iso={user.suspended_until} /></> : ' until lifted'}</p>
                {user.suspension_reason && <p class="summary-list__line secondary">Reason: {user.suspension_reason}</p>}
              </>
              )
            : 'Active: can sign in'}
        </SummaryRow>
        <SummaryRow label="Created"><When iso={user.created_at} /></SummaryRow>
        <SummaryRow label="Last sign-in"><When iso={user.last_login_at} empty="Never" /></SummaryRow>
        <SummaryRow label="Live sessions">{formatNumber(user.sessions)}</SummaryRow>
      </dl>
    </section>
  )
}

interface ActionProps<T> {
  user: AdminUser
  onDone: T
  onError: (error: unknown, field?: string) => void
}

function Suspend ({ user, onDone, onError }: ActionProps<(changed: AdminUser) => void>) {
  const [reason, setReason] = useState('')
  const [until, setUntil] = useState('')
  const [errors, setErrors] = useState<FieldError[]>([])
  const [busy, setBusy] = useState(false)

  async function submit (event: Event) {
    event.preventDefault()
    const problems: FieldError[] = []
    if (reason.trim() === '') problems.push({ field: 'suspend-reason', message: 'Enter the reason for the suspension' })
    else if (reason.trim().length > REASON_MAX) problems.push({ field: 'suspend-reason', message: `The reason must be ${REASON_MAX} characters or fewer` })
    const untilDate = until ? new Date(until) : undefined
    if (untilDate !== undefined && (Number.isNaN(untilDate.getTime()) || untilDate.getTime() <= Date.now())) {
      problems.push({ field: 'suspend-until', message: 'The end of the suspension must be in the future' })
    }
    setErrors(problems)
    if (problems.length > 0) return
    setBusy(true)
    try {
      const changed = await suspendUser(user.id, reason.trim(), untilDate?.toISOString())
      setReason('')
      setUntil('')
      onDone(changed)
    } catch (error) {
      onError(error)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form class="card card--warning" onSubmit={submit} noValidate method="post" aria-labelledby="suspend-heading">
      <h3 class="heading-s" id="suspend-heading">Suspend account</h3>
      <p class="body-s">They cannot sign in, every session ends and their access tokens stop working at once.</p>
      <ErrorSummary errors={errors} />
      <Field id="suspend-reason" label="Reason" hint="Kept in the audit log and shown to other administrators." error={errorFor(errors, 'suspend-reason')}>
        {(describedBy, invalid) => (
          <textarea class="textarea" id="suspend-reason" name="reason" rows={3} maxLength={REASON_MAX + 100}
            value={reason} onInput={(e) => setReason(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
        )}
      </Field>
      <Field id="suspend-until" label="Until (optional)" hint="Leave empty to suspend until an administrator lifts it." error={errorFor(errors, 'suspend-until')}>
        {(describedBy, invalid) => (
          <input class="input" id="suspend-until" name="until" type="datetime-local"
            value={until} onInput={(e) => setUntil(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
        )}
      </Field>
      <Button type="submit" variant="warning" busy={busy}>{busy ? 'Suspending…' : 'Suspend account'}</Button>
    </form>
  )
}

/** An optional "why" for the audit log, as the API takes it (1-500 characters, or nothing). */
function ReasonField ({ id, value, onInput, error }: { id: string, value: string, onInput: (value: string) => void, error?: string }) {
  return (
    <Field id={id} label="Reason (optional)" hint="Kept in the audit log." error={error}>
      {(describedBy, invalid) => (
        <textarea class="textarea textarea--short" id={id} name="reason" rows={2}
          value={value} onInput={(e) => onInput(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
      )}
    </Field>
  )
}

function optionalReason (reason: string, field: string): { reason?: string, error?: FieldError } {
  const trimmed = reason.trim()
  if (trimmed.length > REASON_MAX) return { error: { field, message: `The reason must be ${REASON_MAX} characters or fewer` } }
  return { reason: trimmed === '' ? undefined : trimmed }
}

function Unsuspend ({ user, onDone, onError }: ActionProps<(changed: AdminUser) => void>) {
  const [reason, setReason] = useState('')
  const [errors, setErrors] = useState<FieldError[]>([])
  const [busy, setBusy] = useState(false)

  async function submit (event: Event) {
    event.preventDefault()
    const note = optionalReason(reason, 'unsuspend-reason')
    setErrors(note.error ? [note.error] : [])
    if (note.error) return
    setBusy(true)
    try {
      onDone(await unsuspendUser(user.id, note.reason))
    } catch (error) {
      onError(error)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate method="post" aria-labelledby="unsuspend-heading">
      <h3 class="heading-s" id="unsuspend-heading">Lift the suspension</h3>
      <p class="body-s">They can sign in again. The sessions the suspension ended stay ended.</p>
      <ErrorSummary errors={errors} />
      <ReasonField id="unsuspend-reason" value={reason} onInput={setReason} error={errorFor(errors, 'unsuspend-reason')} />
      <Button type="submit" busy={busy}>{busy ? 'Lifting…' : 'Lift suspension'}</Button>
    </form>
  )
}

function ChangeRole ({ user, onDone, onError }: ActionProps<(changed: AdminUser, role: Role) => void>) {
  const [role, setRoleChoice] = useState<Role>(user.role)
  const [reason, setReason] = useState('')
  const [errors, setErrors] = useState<FieldError[]>([])
  const [busy, setBusy] = useState(false)
  useEffect(() => setRoleChoice(user.role), [user.role])

  async function submit (event: Event) {
    event.preventDefault()
    const note = optionalReason(reason, 'role-reason')
    const problems: FieldError[] = note.error ? [note.error] : []
    if (role === user.role) problems.unshift({ field: `role-${role === 'admin' ? 'user' : 'admin'}`, message: `${user.username} is already ${role === 'admin' ? 'an administrator' : 'a user'}: choose the other role` })
    setErrors(problems)
    if (problems.length > 0) return
    setBusy(true)
    try {
      const changed = await setRole(user.id, role, note.reason)
      setReason('')
      onDone(changed, role)
    } catch (error) {
      onError(error)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate method="post">
      <ErrorSummary errors={errors} />
      <fieldset class="fieldset" aria-describedby="role-hint">
        <legend class="heading-s">Role</legend>
        <p class="hint" id="role-hint">Changing the role ends all of their sessions: they sign in again.</p>
        <div class="radios">
          {(['user', 'admin'] as const).map((value) => (
            <div class="radios__item" key={value}>
              <input class="radios__input" type="radio" id={`role-${value}`} name="role" value={value}
                checked={role === value} onChange={() => setRoleChoice(value)} />
              <label class="radios__label" for={`role-${value}`}>{value === 'admin' ? 'Administrator' : 'User'}{value === user.role ? ' (current)' : ''}</label>
            </div>
          ))}
        </div>
      </fieldset>
      <ReasonField id="role-reason" value={reason} onInput={setReason} error={errorFor(errors, 'role-reason')} />
      <Button type="submit" variant="secondary" busy={busy}>{busy ? 'Changing…' : 'Change role'}</Button>
    </form>
  )
}

function PasswordReset ({ user, onDone, onError }: ActionProps<(revoked: boolean) => void>) {
  const [revoke, setRevoke] = useState(false)
  const [busy, setBusy] = useState(false)

  async function submit (event: Event) {
    event.preventDefault()
    setBusy(true)
    try {
      await sendPasswordReset(user.id, revoke)
      setRevoke(false)
      onDone(revoke)
    } catch (error) {
      onError(error)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form class="card" onSubmit={submit} noValidate method="post" aria-labelledby="reset-heading">
      <h3 class="heading-s" id="reset-heading">Password reset</h3>
      <p class="body-s">Emails {user.email} a single-use link to choose a new password. No password is ever sent.</p>
      <div class="checkboxes__item">
        <input class="checkboxes__input" type="checkbox" id="reset-revoke" name="revoke_sessions" checked={revoke} onChange={(e) => setRevoke(e.currentTarget.checked)} />
        <label class="checkboxes__label" for="reset-revoke">Also end all their sessions now</label>
      </div>
      <Button type="submit" variant="secondary" busy={busy}>{busy ? 'Sending…' : 'Send reset link'}</Button>
    </form>
  )
}

function SessionsSection ({ user, sessions, onRevoked, onError }: { user: AdminUser, sessions?: Session[], onRevoked: () => void, onError: (error: unknown) => void }) {
  const [confirming, setConfirming] = useState(false)
  const [busy, setBusy] = useState(false)
  const confirmRef = useRef<HTMLDivElement>(null)
  const openRef = useRef<HTMLDivElement>(null)

  useEffect(() => {
    if (confirming) confirmRef.current?.querySelector<HTMLButtonElement>('button')?.focus()
  }, [confirming])

  async function revoke () {
    setBusy(true)
    try {
      await revokeSessions(user.id)
      setConfirming(false)
      onRevoked()
    } catch (error) {
      onError(error)
    } finally {
      setBusy(false)
    }
  }

  function cancel () {
    setConfirming(false)
    setTimeout(() => openRef.current?.querySelector<HTMLButtonElement>('button')?.focus(), 0)
  }

  return (
    <section aria-labelledby="sessions-heading" class="section">
      <div class="section__header">
        <h2 class="heading-m" id="sessions-heading">Sessions{sessions ? ` (${formatNumber(sessions.length)})` : ''}</h2>
        {sessions && sessions.length > 0 && !confirming && (
          <div ref={openRef}><Button variant="warning" onClick={() => setConfirming(true)}>End all sessions</Button></div>
        )}
      </div>
      {confirming && (
        <div class="confirm" ref={confirmRef} role="group" aria-labelledby="confirm-revoke">
          <p id="confirm-revoke"><strong>End all {plural(sessions?.length ?? 0, 'session', 'sessions')} of {user.username}?</strong> They are signed out everywhere at once and must sign in again.</p>
          <div class="button-group">
            <Button variant="warning" busy={busy} onClick={revoke}>{busy ? 'Ending…' : 'Yes, end all sessions'}</Button>
            <Button variant="secondary" onClick={cancel}>Cancel</Button>
          </div>
        </div>
      )}
      {sessions === undefined
        ? <Spinner label="Loading sessions…" />
        : sessions.length === 0
          ? <p class="secondary">No live sessions: they are signed out everywhere.</p>
          : (
            <div class="table-wrap">
              <table class="table" data-testid="sessions-table">
                <caption class="visually-hidden">Live sessions of {user.username}</caption>
                <thead>
                  <tr><th scope="col">Device</th><th scope="col">IP address</th><th scope="col">Started</th><th scope="col">Last active</th><th scope="col">Expires</th></tr>
                </thead>
                <tbody>
                  {sessions.map((session) => (
                    <tr key={session.id}>
                      <td class="table__device" title={session.user_agent ?? undefined}>
                        {describeUserAgent(session.user_agent)}
                        {session.current && <span class="table__note">This console</span>}
                      </td>
                      <td>{session.ip ?? '–'}</td>
                      <td class="table__date table__date--wrap"><When iso={session.created_at} /></td>
                      <td class="table__date table__date--wrap"><When iso={session.last_used_at} /></td>
                      <td class="table__date table__date--wrap"><When iso={session.expires_at} /></td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            )}
    </section>
  )
}

function Actor ({ event, user, me }: { event: AuditEvent, user: AdminUser, me: Me }) {
  if (event.actor_id === null) return <span class="secondary">–</span>
  if (event.actor_id === me.id) return <>You</>
  if (event.actor_id === user.id) return <>{user.username}</>
  return <a href={userHref(event.actor_id)}>{event.actor_username ?? `User ${event.actor_id}`}</a>
}

function AuditSection ({ user, me, events, cursor, onMore }: { user: AdminUser, me: Me, events?: AuditEvent[], cursor: string | null, onMore: () => Promise<void> }) {
  const [busy, setBusy] = useState(false)
  return (
    <section aria-labelledby="audit-heading" class="section">
      <h2 class="heading-m" id="audit-heading">Recent activity</h2>
      {events === undefined
        ? <Spinner label="Loading activity…" />
        : events.length === 0
          ? <p class="secondary">Nothing recorded yet.</p>
          : (
            <div class="table-wrap">
              <table class="table" data-testid="audit-table">
                <caption class="visually-hidden">Audit events about {user.username}, newest first</caption>
                <thead>
                  <tr><th scope="col">When</th><th scope="col">Event</th><th scope="col">By</th><th scope="col">IP address</th></tr>
                </thead>
                <tbody>
                  {events.map((event) => (
                    <tr key={event.id}>
                      <td class="table__date"><When iso={event.created_at} /></td>
                      <td>
                        {describeEventType(event.type)}
                        {event.outcome === 'failure' && <> <Tag tone="red">Failed</Tag></>}
                        {describeDetail(event.detail) && <span class="table__note">{describeDetail(event.detail)}</span>}
                        {event.reason && <span class="table__note">Reason: {event.reason}</span>}
                      </td>
                      <td><Actor event={event} user={user} me={me} /></td>
                      <td>{event.ip ?? '–'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            )}
      {cursor !== null && events !== undefined && (
        <Button variant="secondary" busy={busy} onClick={async () => { setBusy(true); await onMore(); setBusy(false) }}>
          {busy ? 'Loading…' : 'Show older activity'}
        </Button>
      )}
    </section>
  )
}
