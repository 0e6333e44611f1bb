import { useEffect, useState } from 'preact/hooks'
import { logout, logoutOnUnload, onSessionEnded, type Me } from './api.js'
import { Directory } from './directory.js'
import { InviteUser } from './invite.js'
import { useRoute, usersHref } from './router.js'
import { SignIn } from './sign-in.js'
import { announce, Button, LiveRegion, PageHeading } from './ui.js'
import { UserPage } from './user-page.js'

const appName = document.querySelector<HTMLMetaElement>('meta[name="application-name"]')?.content || 'User Management API'

/** What a screen says after an action that moved us to another screen ("Invitation sent"). */
export interface Flash {
  message: string
  /** The screen (location.hash) it belongs to: shown there once. */
  on: string
}

export function App () {
  const [me, setMe] = useState<Me>()
  const [notice, setNotice] = useState<string>()

  useEffect(() => {
    onSessionEnded((reason) => {
      setMe(undefined)
      setNotice(reason)
    })
    // The tokens die with the page; end the session on the server too.
    addEventListener('pagehide', logoutOnUnload)
    return () => removeEventListener('pagehide', logoutOnUnload)
  }, [])

  async function signOut () {
    try {
      await logout()
    } finally {
      setMe(undefined)
      setNotice('You have signed out.')
      announce('You have signed out.')
    }
  }

  return (
    <>
      <SkipLink />
      <Header me={me} onSignOut={signOut} />
      {me === undefined
        ? <SignIn appName={appName} notice={notice} onSignedIn={(who) => { setNotice(undefined); setMe(who) }} />
        : <Console me={me} />}
      <LiveRegion />
      <footer class="footer">
        <div class="width-container">
          <p class="body-s">{appName} · Admin console · Every action here is recorded in the audit log.</p>
        </div>
      </footer>
    </>
  )
}

function SkipLink () {
  return (
    <a class="skip-link" href="#main" onClick={(event) => {
      // The fragment is the router's: move focus to the content ourselves.
      event.preventDefault()
      const main = document.getElementById('main')
      main?.setAttribute('tabindex', '-1')
      main?.focus()
    }}>Skip to main content</a>
  )
}

function Header ({ me, onSignOut }: { me?: Me, onSignOut: () => void }) {
  const route = useRoute()
  return (
    <header class="header">
      <div class="width-container header__inner">
        <div class="header__brand">
          <span class="header__app">{appName}</span>
          <span class="header__product">Admin console</span>
        </div>
        {me && (
          <nav class="header__nav" aria-label="Console">
            <ul class="header__links">
              <li><a href="#/" aria-current={route.name === 'users' || route.name === 'user' ? 'page' : undefined}>Users</a></li>
              <li><a href="#/invite" aria-current={route.name === 'invite' ? 'page' : undefined}>Invite a user</a></li>
            </ul>
            <div class="header__account">
              <span class="header__who">Signed in as <strong data-testid="signed-in-as">{me.email}</strong></span>
              <Button variant="secondary" class="button--inverse" onClick={onSignOut}>Sign out</Button>
            </div>
          </nav>
        )}
      </div>
    </header>
  )
}

// The last directory screen (its filters and page), for the user page's "Back to users".
let lastDirectory = '#/'

function Console ({ me }: { me: Me }) {
  const route = useRoute()
  const [flash, setFlash] = useState<Flash>()

  useEffect(() => {
    if (route.name === 'users') lastDirectory = usersHref(route.params)
    // A flash is for the screen it was made for, once: leaving that screen drops it.
    if (flash !== undefined && flash.on !== location.hash) setFlash(undefined)
  })

  const flashHere = flash !== undefined && flash.on === location.hash ? flash.message : undefined
  switch (route.name) {
    case 'users':
      return <main class="page" id="main"><Directory params={route.params} /></main>
    case 'user':
      return <main class="page" id="main"><UserPage key={route.id} id={route.id} me={me} backHref={lastDirectory} flash={flashHere} /></main>
    case 'invite':
      return <main class="page page--narrow" id="main"><InviteUser onCreated={setFlash} /></main>
    default:
      return (
        <main class="page" id="main">
          <PageHeading>Page not found</PageHeading>
          <p>There is no console screen at this address. <a href="#/">Go to the list of users</a>.</p>
        </main>
      )
  }
}
