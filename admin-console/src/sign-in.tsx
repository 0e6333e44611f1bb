import { useEffect, useState } from 'preact/hooks'
import { getMe, login, loginWithSecondFactor, logout, type Me, type MfaChallenge } from './api.js'
import { Button, ErrorSummary, errorFor, Field, messageOf, PageHeading, type FieldError } from './ui.js'

// Sign-in: the password, then (for an account with MFA, issue 15) a code from an authenticator
// app or a recovery code. Only an administrator gets in; anyone else is told so and the session
// the password just opened is ended at once.

const NOT_AN_ADMIN = 'This account is not an administrator. Only administrators can use the admin console: ask an administrator to change your role if you need it.'

interface Props {
  appName: string
  /** Why the last session ended (signed out, expired...), shown above the form. */
  notice?: string
  onSignedIn: (me: Me) => void
}

export function SignIn ({ appName, notice, onSignedIn }: Props) {
  const [challenge, setChallenge] = useState<MfaChallenge>()
  const [refusal, setRefusal] = useState<string>()

  /** A session exists now: let an admin in, end it for anyone else. */
  async function admit (): Promise<void> {
    const me = await getMe()
    if (me.role === 'admin') {
      onSignedIn(me)
      return
    }
    await logout()
    setChallenge(undefined)
    setRefusal(NOT_AN_ADMIN)
  }

  return (
    <main class="page page--narrow" id="main">
      {challenge === undefined
        // Keyed by the refusal: a refused sign-in starts the form afresh with that message on top.
        ? <PasswordStep key={refusal ?? ''} appName={appName} notice={notice} refusal={refusal} onChallenge={(c) => { setRefusal(undefined); setChallenge(c) }} admit={admit} />
        : <SecondFactorStep challenge={challenge} admit={admit} onRestart={() => setChallenge(undefined)} />}
    </main>
  )
}

interface PasswordStepProps {
  appName: string
  notice?: string
  refusal?: string
  onChallenge: (c: MfaChallenge) => void
  admit: () => Promise<void>
}

function PasswordStep ({ appName, notice, refusal, onChallenge, admit }: PasswordStepProps) {
  const [email, setEmail] = useState('')
  const [password, setPassword] = useState('')
  const [errors, setErrors] = useState<FieldError[]>(refusal ? [{ message: refusal }] : [])
  const [summaryTitle, setSummaryTitle] = useState(refusal ? 'You cannot use the admin console' : undefined)
  const [busy, setBusy] = useState(false)

  async function submit (event: Event) {
    event.preventDefault()
    const problems: FieldError[] = []
    if (email.trim() === '') problems.push({ field: 'email', message: 'Enter your email address' })
    if (password === '') problems.push({ field: 'password', message: 'Enter your password' })
    setErrors(problems)
    setSummaryTitle(undefined)
    if (problems.length > 0) return
    setBusy(true)
    try {
      const challenge = await login(email.trim(), password)
      setPassword('')
      if (challenge !== undefined) onChallenge(challenge)
      else await admit()
    } catch (error) {
      // "Incorrect email or password" is about both fields (and must not say which): no field.
      setErrors([{ message: messageOf(error) }])
    } finally {
      setBusy(false)
    }
  }

  return (
    <>
      <ErrorSummary errors={errors} title={summaryTitle} />
      {notice && refusal === undefined && <div class="inset" data-testid="sign-in-notice">{notice}</div>}
      <PageHeading>Sign in to the admin console</PageHeading>
      <p class="lead">For administrators of {appName}. Use your account's email address and password.</p>
      <form class="form" onSubmit={submit} noValidate method="post">
        <Field id="email" label="Email address" error={errorFor(errors, 'email')}>
          {(describedBy, invalid) => (
            <input class="input" id="email" name="email" type="email" autoComplete="username" spellcheck={false}
              value={email} onInput={(e) => setEmail(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
          )}
        </Field>
        <Field id="password" label="Password" error={errorFor(errors, 'password')}>
          {(describedBy, invalid) => (
            <input class="input" id="password" name="password" type="password" autoComplete="current-password"
              value={password} onInput={(e) => setPassword(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
          )}
        </Field>
        <Button type="submit" busy={busy}>{busy ? 'Signing in…' : 'Sign in'}</Button>
      </form>
      <p class="body-s secondary">
        For your safety the console keeps your sign-in in this tab's memory only: reloading or closing
        the page signs you out, and you sign in again.
      </p>
    </>
  )
}

function SecondFactorStep ({ challenge, admit, onRestart }: { challenge: MfaChallenge, admit: () => Promise<void>, onRestart: () => void }) {
  const offersTotp = challenge.methods.includes('totp')
  const offersRecovery = challenge.methods.includes('recovery_code')
  const [useRecovery, setUseRecovery] = useState(!offersTotp && offersRecovery)
  const [code, setCode] = useState('')
  const [errors, setErrors] = useState<FieldError[]>([])
  const [busy, setBusy] = useState(false)
  const [switched, setSwitched] = useState(false)
  const field = useRecovery ? 'recovery-code' : 'code'

  // The new field replaces the old one: keep keyboard users where they were heading.
  useEffect(() => {
    if (switched) document.getElementById(field)?.focus()
  }, [useRecovery])

  if (!offersTotp && !offersRecovery) {
    return (
      <>
        <ErrorSummary errors={[{ message: 'This account signs in with a passkey only. The admin console accepts an authenticator app code or a recovery code: add one of those to your account, then sign in again.' }]} />
        <PageHeading>Second step needed</PageHeading>
        <Button variant="secondary" onClick={onRestart}>Back to sign in</Button>
      </>
    )
  }

  async function submit (event: Event) {
    event.preventDefault()
    const value = useRecovery ? code.trim() : code.replaceAll(/\s/g, '')
    if (value === '') {
      setErrors([{ field, message: useRecovery ? 'Enter a recovery code' : 'Enter the 6-digit code from your authenticator app' }])
      return
    }
    if (!useRecovery && !/^\d{6}$/.test(value)) {
      setErrors([{ field, message: 'The code is 6 digits, like 123456' }])
      return
    }
    setErrors([])
    setBusy(true)
    try {
      await loginWithSecondFactor(challenge.mfaToken, useRecovery ? { recovery_code: value } : { code: value })
      await admit()
    } catch (error) {
      setErrors([{ field, message: messageOf(error) }])
      setCode('')
    } finally {
      setBusy(false)
    }
  }

  function switchMethod () {
    setUseRecovery(!useRecovery)
    setCode('')
    setErrors([])
    setSwitched(true)
  }

  return (
    <>
      <ErrorSummary errors={errors} />
      <PageHeading caption="Two-step verification">
        {useRecovery ? 'Enter a recovery code' : 'Enter the code from your authenticator app'}
      </PageHeading>
      <form class="form" onSubmit={submit} noValidate method="post">
        {useRecovery
          ? (
            <Field id="recovery-code" label="Recovery code" error={errorFor(errors, 'recovery-code')}
              hint="One of the codes you saved when you turned on two-step verification. Each code works once.">
              {(describedBy, invalid) => (
                <input class="input input--code" id="recovery-code" name="recovery_code" type="text" autoComplete="off" spellcheck={false} autoCapitalize="none"
                  value={code} onInput={(e) => setCode(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
              )}
            </Field>
            )
          : (
            <Field id="code" label="Verification code" error={errorFor(errors, 'code')}
              hint="The 6-digit code your authenticator app shows for this account now.">
              {(describedBy, invalid) => (
                <input class="input input--code input--width-10" id="code" name="code" type="text" inputMode="numeric" autoComplete="one-time-code" spellcheck={false}
                  value={code} onInput={(e) => setCode(e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
              )}
            </Field>
            )}
        <div class="button-group">
          <Button type="submit" busy={busy}>{busy ? 'Checking…' : 'Continue'}</Button>
          {offersTotp && offersRecovery && (
            <Button variant="link" onClick={switchMethod}>
              {useRecovery ? 'Use your authenticator app instead' : 'Use a recovery code instead'}
            </Button>
          )}
        </div>
      </form>
      <p class="body-s"><Button variant="link" onClick={onRestart}>Start again with your password</Button></p>
    </>
  )
}
