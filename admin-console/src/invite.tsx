import { useState } from 'preact/hooks'
import { ApiError, createUser, type Role } from './api.js'
import type { Flash } from './app.js'
import { navigate, userHref } from './router.js'
import { Button, ErrorSummary, errorFor, Field, messageOf, PageHeading, type FieldError } from './ui.js'
import { rememberUser } from './user-cache.js'

// POST /admin/users. By default the new user is emailed a single-use link to choose their own
// password; an admin who must hand over an account in person can set a password instead (it is
// sent to the API once, and never shown, emailed or logged).

export function InviteUser ({ onCreated }: { onCreated: (flash: Flash) => void }) {
  const [username, setUsername] = useState('')
  const [email, setEmail] = useState('')
  const [role, setRole] = useState<Role>('user')
  const [invite, setInvite] = useState(true)
  const [password, setPassword] = useState('')
  const [errors, setErrors] = useState<FieldError[]>([])
  const [busy, setBusy] = useState(false)

  async function submit (event: Event) {
    event.preventDefault()
    const problems: FieldError[] = []
    if (username.trim() === '') problems.push({ field: 'invite-username', message: 'Enter a username' })
    if (email.trim() === '') problems.push({ field: 'invite-email', message: 'Enter an email address' })
    else if (!/^[^\s@]+@[^\s@]+$/.test(email.trim())) problems.push({ field: 'invite-email', message: 'Enter an email address like name@example.com' })
    if (!invite && password === '') problems.push({ field: 'invite-password', message: 'Enter a password, or choose to email an invitation' })
    setErrors(problems)
    if (problems.length > 0) return
    setBusy(true)
    try {
      const user = await createUser({ username: username.trim(), email: email.trim(), role, invite, ...(invite ? {} : { password }) })
      setPassword('')
      rememberUser(user)
      const hash = userHref(user.id)
      onCreated({
        on: hash,
        message: invite
          ? `${user.username} was created. An invitation to choose a password is on its way to ${user.email}.`
          : `${user.username} was created with the password you set. Give it to them in person; they can change it after signing in.`
      })
      navigate(hash)
    } catch (error) {
      // The API names the field in a 400 ("email: ...", "Username already registered"): point at it.
      const detail = error instanceof ApiError ? error.detail.toLowerCase() : ''
      const field = !(error instanceof ApiError) || error.status !== 400
        ? undefined
        : detail.includes('password') ? 'invite-password' : detail.includes('email') ? 'invite-email' : detail.includes('username') ? 'invite-username' : undefined
      setErrors([{ field, message: messageOf(error) }])
    } finally {
      setBusy(false)
    }
  }

  return (
    <>
      <a class="back-link" href="#/">Back to users</a>
      <ErrorSummary errors={errors} />
      <PageHeading>Invite a user</PageHeading>
      <form class="form" onSubmit={submit} noValidate method="post">
        <Field id="invite-username" label="Username" hint="1 to 64 characters. Must not be taken (ignoring case)." error={errorFor(errors, 'invite-username')}>
          {(describedBy, invalid) => (
            <input class="input input--width-20" id="invite-username" name="username" type="text" autoComplete="off" spellcheck={false} maxLength={64}
              value={username} onInput={(e) => setUsername(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
          )}
        </Field>
        <Field id="invite-email" label="Email address" error={errorFor(errors, 'invite-email')}>
          {(describedBy, invalid) => (
            <input class="input" id="invite-email" name="email" type="email" autoComplete="off" spellcheck={false} maxLength={320}
              value={email} onInput={(e) => setEmail(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
          )}
        </Field>
        <fieldset class="fieldset">
          <legend class="label">Role</legend>
          <div class="radios radios--inline">
            {(['user', 'admin'] as const).map((value) => (
              <div class="radios__item" key={value}>
                <input class="radios__input" type="radio" id={`invite-role-${value}`} name="role" value={value} checked={role === value} onChange={() => setRole(value)} />
                <label class="radios__label" for={`invite-role-${value}`}>{value === 'admin' ? 'Administrator' : 'User'}</label>
              </div>
            ))}
          </div>
        </fieldset>
        <fieldset class="fieldset">
          <legend class="label">How will they get a password?</legend>
          <div class="radios">
            <div class="radios__item">
              <input class="radios__input" type="radio" id="invite-by-email" name="invite" checked={invite} onChange={() => setInvite(true)} aria-describedby="invite-by-email-hint" />
              <label class="radios__label" for="invite-by-email">Email them an invitation (recommended)</label>
              <div class="hint radios__hint" id="invite-by-email-hint">A single-use link to choose their own password. Opening it also confirms the email address.</div>
            </div>
            <div class="radios__item">
              <input class="radios__input" type="radio" id="invite-set-password" name="invite" checked={!invite} onChange={() => setInvite(false)} />
              <label class="radios__label" for="invite-set-password">Set a password now</label>
            </div>
          </div>
          {!invite && (
            <div class="radios__conditional">
              <Field id="invite-password" label="Password" hint="It must meet the password policy: long enough (8 characters unless configured otherwise), not a common password, and not containing the username or email." error={errorFor(errors, 'invite-password')}>
                {(describedBy, invalid) => (
                  <input class="input input--width-20" id="invite-password" name="password" type="password" autoComplete="new-password"
                    value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
                )}
              </Field>
            </div>
          )}
        </fieldset>
        <Button type="submit" busy={busy}>{busy ? 'Creating…' : invite ? 'Send invitation' : 'Create user'}</Button>
      </form>
    </>
  )
}
