import { useEffect, useState } from 'preact/hooks'
import { listUsers, type AdminUser, type UserFilters, type UserList } from './api.js'
import { formatDateTime, formatNumber, plural } from './format.js'
import { navigate, userHref, usersHref } from './router.js'
import { announce, Button, ErrorSummary, Field, messageOf, PageHeading, Spinner, Tag, type FieldError } from './ui.js'
import { rememberUser } from './user-cache.js'

// The directory: search, filters, sorting and keyset paging over GET /admin/users. The screen's
// whole state is in the URL fragment (#/?q=ann&role=admin&cursor=...), so the back button, a
// bookmark within the tab and "Back to users" all return to the same page of the same search.

type Sort = NonNullable<UserFilters['sort']>
type Order = NonNullable<UserFilters['order']>

const PAGE_SIZES = [25, 50, 100, 200]
const DEFAULT_LIMIT = 50

/** The filters as the form edits them; dates are the form's YYYY-MM-DD. */
interface FormState {
  q: string
  match: 'prefix' | 'contains'
  role: '' | 'user' | 'admin'
  status: '' | 'active' | 'suspended'
  email_verified: '' | 'true' | 'false'
  created_from: string
  created_to: string
  limit: number
}

const DATE = /^\d{4}-\d{2}-\d{2}$/

/** Whether a search narrows the directory at all (page size and sort do not). */
function isFiltered (form: FormState): boolean {
  return form.q.trim() !== '' || form.match === 'contains' || form.role !== '' || form.status !== '' ||
    form.email_verified !== '' || form.created_from !== '' || form.created_to !== ''
}

function pick<T extends string> (value: string | null, allowed: readonly T[], fallback: T): T {
  return allowed.includes(value as T) ? value as T : fallback
}

function formFrom (params: URLSearchParams): FormState {
  const limit = Number(params.get('limit'))
  return {
    q: params.get('q') ?? '',
    match: pick(params.get('match'), ['prefix', 'contains'] as const, 'prefix'),
    role: pick(params.get('role'), ['', 'user', 'admin'] as const, ''),
    status: pick(params.get('status'), ['', 'active', 'suspended'] as const, ''),
    email_verified: pick(params.get('email_verified'), ['', 'true', 'false'] as const, ''),
    created_from: DATE.test(params.get('created_from') ?? '') ? params.get('created_from')! : '',
    created_to: DATE.test(params.get('created_to') ?? '') ? params.get('created_to')! : '',
    limit: PAGE_SIZES.includes(limit) ? limit : DEFAULT_LIMIT
  }
}

function sortFrom (params: URLSearchParams): { sort: Sort, order: Order } {
  return {
    sort: pick(params.get('sort'), ['created_at', 'email', 'username', 'last_login_at'] as const, 'created_at'),
    order: pick(params.get('order'), ['asc', 'desc'] as const, 'desc')
  }
}

/** The fragment for a search: only what differs from the defaults, so links stay short. */
function paramsFor (form: FormState, sort: { sort: Sort, order: Order }, cursor?: string): URLSearchParams {
  const params = new URLSearchParams()
  if (form.q.trim() !== '') params.set('q', form.q.trim())
  if (form.match === 'contains') params.set('match', 'contains')
  for (const key of ['role', 'status', 'email_verified', 'created_from', 'created_to'] as const) {
    if (form[key] !== '') params.set(key, form[key])
  }
  if (form.limit !== DEFAULT_LIMIT) params.set('limit', String(form.limit))
  if (sort.sort !== 'created_at') params.set('sort', sort.sort)
  if (sort.order !== 'desc') params.set('order', sort.order)
  if (cursor) params.set('cursor', cursor)
  return params
}

/** The day's first and last moment in the admin's own time zone, as the API's ISO 8601. */
function startOfDay (date: string): string {
  return new Date(`${date}T00:00:00`).toISOString()
}
function endOfDay (date: string): string {
  return new Date(`${date}T23:59:59.999`).toISOString()
}

function filtersFor (form: FormState, sort: { sort: Sort, order: Order }, cursor?: string): UserFilters {
  return {
    q: form.q.trim() || undefined,
    match: form.match,
    role: form.role || undefined,
    status: form.status || undefined,
    email_verified: form.email_verified || undefined,
    created_from: form.created_from ? startOfDay(form.created_from) : undefined,
    created_to: form.created_to ? endOfDay(form.created_to) : undefined,
    sort: sort.sort,
    order: sort.order,
    limit: form.limit,
    cursor
  }
}

// The cursors of the pages seen so far, per search: "Previous page" without a backwards cursor,
// and the "26-50" of a page. Kept while the tab lives, like everything else here.
const trails = new Map<string, string[]>()

export function Directory ({ params }: { params: URLSearchParams }) {
  const form = formFrom(params)
  const sort = sortFrom(params)
  const cursor = params.get('cursor') ?? undefined
  const searchKey = paramsFor(form, sort).toString()
  const trail = trails.get(searchKey) ?? ['']
  const pageIndex = trail.indexOf(cursor ?? '')

  const [result, setResult] = useState<UserList>()
  const [error, setError] = useState<FieldError[]>([])
  const [loading, setLoading] = useState(true)
  // Bumped by "Search" with an unchanged search: the admin asks for fresh results.
  const [generation, setGeneration] = useState(0)

  useEffect(() => {
    const controller = new AbortController()
    setLoading(true)
    setError([])
    announce('Loading users…')
    listUsers(filtersFor(form, sort, cursor), controller.signal).then((list) => {
      // An answer to a search the admin has since replaced is dropped.
      if (controller.signal.aborted) return
      setResult(list)
      setLoading(false)
      announce(list.users.length === 0 ? 'No users match.' : `${totalText(list, isFiltered(form))} found. Showing ${plural(list.users.length, 'user', 'users')} on this page.`)
    }, (failure: unknown) => {
      if (controller.signal.aborted) return
      setLoading(false)
      setResult(undefined)
      setError([{ message: messageOf(failure) }])
    })
    return () => controller.abort()
    // The fragment is the whole state: refetch when it changes (or on "Search" again).
  }, [params.toString(), generation])

  function goTo (next: string | undefined) {
    navigate(usersHref(paramsFor(form, sort, next)))
  }

  function nextPage () {
    if (!result?.next_cursor) return
    const known = pageIndex >= 0 ? trail.slice(0, pageIndex + 1) : [cursor ?? '']
    trails.set(searchKey, [...known, result.next_cursor])
    goTo(result.next_cursor)
  }

  function previousPage () {
    if (pageIndex > 0) goTo(trail[pageIndex - 1] || undefined)
  }

  function sortBy (column: Sort) {
    const order: Order = column === sort.sort
      ? (sort.order === 'asc' ? 'desc' : 'asc')
      : column === 'email' || column === 'username' ? 'asc' : 'desc'
    navigate(usersHref(paramsFor(form, { sort: column, order })))
  }

  const firstShown = pageIndex >= 0 ? pageIndex * form.limit + 1 : undefined

  return (
    <>
      <div class="page-header">
        <PageHeading>Users</PageHeading>
        <a class="button button--secondary" href="#/invite">Invite a user</a>
      </div>
      <SearchForm searchKey={searchKey} initial={form} onSearch={(next) => {
        const hash = usersHref(paramsFor(next, sort))
        if (hash === location.hash || (hash === '#/' && location.hash === '')) setGeneration(generation + 1)
        else navigate(hash)
      }} />
      <ErrorSummary errors={error} />
      <section aria-labelledby="results-heading" class="results">
        <h2 class="visually-hidden" id="results-heading">Results</h2>
        {loading && result === undefined && <Spinner label="Loading users…" />}
        {result && (
          <div class={loading ? 'results--stale' : undefined} aria-busy={loading}>
            <p class="results__count" data-testid="result-count">
              <strong>{totalText(result, isFiltered(form))}</strong>
              {result.users.length > 0 && firstShown !== undefined && (
                <span class="secondary"> · showing {formatNumber(firstShown)}–{formatNumber(firstShown + result.users.length - 1)}</span>
              )}
            </p>
            {result.users.length === 0
              ? <NoResults filtered={isFiltered(form)} />
              : <UserTable users={result.users} sort={sort} onSort={sortBy} />}
            <Pagination
              busy={loading}
              page={pageIndex >= 0 ? pageIndex + 1 : undefined}
              hasPrevious={pageIndex > 0}
              hasNext={result.next_cursor !== null}
              onFirst={cursor !== undefined && pageIndex < 0 ? () => goTo(undefined) : undefined}
              onPrevious={previousPage}
              onNext={nextPage}
            />
          </div>
        )}
      </section>
    </>
  )
}

function totalText (list: UserList, filtered: boolean): string {
  if (list.total_exact) return plural(list.total, 'user', 'users')
  // Not a count: for a search, the API stopped counting at its cap; for the whole directory
  // (PostgreSQL), it read the catalog's estimate.
  return filtered ? `${formatNumber(list.total)} or more users` : `About ${formatNumber(list.total)} users`
}

function NoResults ({ filtered }: { filtered: boolean }) {
  return (
    <div class="inset">
      <p><strong>No users match.</strong></p>
      {filtered && <p>Check the spelling, search for the start of the email address or username, choose “Contains”, or clear the filters.</p>}
    </div>
  )
}

function SearchForm ({ searchKey, initial, onSearch }: { searchKey: string, initial: FormState, onSearch: (form: FormState) => void }) {
  const [form, setForm] = useState(initial)
  const [errors, setErrors] = useState<FieldError[]>([])
  const set = <K extends keyof FormState>(key: K, value: FormState[K]) => setForm({ ...form, [key]: value })
  // Another search arrived through the URL (back button, "Clear"): show it. The form is not
  // remounted for it, so keyboard focus stays where it was (on "Search", say).
  useEffect(() => setForm(initial), [searchKey])

  function submit (event: Event) {
    event.preventDefault()
    if (form.created_from && form.created_to && form.created_from > form.created_to) {
      setErrors([{ field: 'created_to', message: '“Created to” must be the same day as “Created from” or later' }])
      return
    }
    setErrors([])
    onSearch(form)
  }

  return (
    <form class="search" role="search" aria-label="Users" onSubmit={submit} noValidate method="get">
      <ErrorSummary errors={errors} />
      <div class="search__main">
        <Field id="q" label="Search by email or username" class="search__query"
          hint={form.match === 'contains' ? 'Anywhere in the email address or username, ignoring case (slower on a large directory).' : 'The start of an email address or username, ignoring case.'}>
          {(describedBy) => (
            <input class="input" id="q" name="q" type="search" autoComplete="off" spellcheck={false} maxLength={320}
              value={form.q} onInput={(e) => set('q', e.currentTarget.value)} aria-describedby={describedBy} />
          )}
        </Field>
        <Field id="match" label="Match">
          {() => (
            <select class="select" id="match" name="match" value={form.match} onChange={(e) => set('match', e.currentTarget.value as FormState['match'])}>
              <option value="prefix">Starts with</option>
              <option value="contains">Contains</option>
            </select>
          )}
        </Field>
        <div class="search__submit">
          <Button type="submit">Search</Button>
        </div>
      </div>
      <fieldset class="filters">
        <legend class="filters__legend">Filters</legend>
        <Field id="role" label="Role">
          {() => (
            <select class="select" id="role" name="role" value={form.role} onChange={(e) => set('role', e.currentTarget.value as FormState['role'])}>
              <option value="">Any role</option>
              <option value="user">User</option>
              <option value="admin">Administrator</option>
            </select>
          )}
        </Field>
        <Field id="status" label="Status">
          {() => (
            <select class="select" id="status" name="status" value={form.status} onChange={(e) => set('status', e.currentTarget.value as FormState['status'])}>
              <option value="">Any status</option>
              <option value="active">Active</option>
              <option value="suspended">Suspended</option>
            </select>
          )}
        </Field>
        <Field id="email_verified" label="Email">
          {() => (
            <select class="select" id="email_verified" name="email_verified" value={form.email_verified} onChange={(e) => set('email_verified', e.currentTarget.value as FormState['email_verified'])}>
              <option value="">Verified or not</option>
              <option value="true">Verified</option>
              <option value="false">Not verified</option>
            </select>
          )}
        </Field>
        <Field id="created_from" label="Created from">
          {() => (
            <input class="input input--date" id="created_from" name="created_from" type="date"
              value={form.created_from} onInput={(e) => set('created_from', e.currentTarget.value)} />
          )}
        </Field>
        <Field id="created_to" label="Created to" error={errors[0]?.field === 'created_to' ? errors[0].message : undefined}>
          {(describedBy, invalid) => (
            <input class="input input--date" id="created_to" name="created_to" type="date"
              value={form.created_to} onInput={(e) => set('created_to', e.currentTarget.value)} aria-describedby={describedBy} aria-invalid={invalid || undefined} />
          )}
        </Field>
        <Field id="limit" label="Per page">
          {() => (
            <select class="select" id="limit" name="limit" value={String(form.limit)} onChange={(e) => set('limit', Number(e.currentTarget.value))}>
              {PAGE_SIZES.map((size) => <option key={size} value={String(size)}>{size}</option>)}
            </select>
          )}
        </Field>
        {isFiltered(initial) && (
          <div class="filters__clear">
            <a class="link-button" href="#/">Clear search and filters</a>
          </div>
        )}
      </fieldset>
    </form>
  )
}

const COLUMNS: Array<{ key: Sort | 'role' | 'status' | 'email_verified' | 'sessions', label: string, sortable: boolean, numeric?: boolean }> = [
  { key: 'username', label: 'Username', sortable: true },
  { key: 'email', label: 'Email', sortable: true },
  { key: 'role', label: 'Role', sortable: false },
  { key: 'status', label: 'Status', sortable: false },
  { key: 'created_at', label: 'Created', sortable: true },
  { key: 'last_login_at', label: 'Last sign-in', sortable: true },
  { key: 'sessions', label: 'Sessions', sortable: false, numeric: true }
]

function UserTable ({ users, sort, onSort }: { users: AdminUser[], sort: { sort: Sort, order: Order }, onSort: (column: Sort) => void }) {
  return (
    <div class="table-wrap">
      <table class="table" data-testid="users-table">
        <caption class="visually-hidden">Users, sorted by {COLUMNS.find((c) => c.key === sort.sort)?.label.toLowerCase()} ({sort.order === 'asc' ? 'ascending' : 'descending'}). Column headings with buttons change the sort.</caption>
        <thead>
          <tr>
            {COLUMNS.map((column) => {
              const active = column.key === sort.sort
              return (
                <th key={column.key} scope="col" class={column.numeric ? 'table__cell--numeric' : undefined}
                  aria-sort={active ? (sort.order === 'asc' ? 'ascending' : 'descending') : undefined}>
                  {column.sortable
                    ? (
                      <button type="button" class="sort-button" onClick={() => onSort(column.key as Sort)}>
                        {column.label}
                        <span class={`sort-button__icon${active ? ' sort-button__icon--active' : ''}`} aria-hidden="true">{active ? (sort.order === 'asc' ? '▲' : '▼') : '↕'}</span>
                      </button>
                      )
                    : column.label}
                </th>
              )
            })}
          </tr>
        </thead>
        <tbody>
          {users.map((user) => <UserRow key={user.id} user={user} />)}
        </tbody>
      </table>
    </div>
  )
}

function UserRow ({ user }: { user: AdminUser }) {
  return (
    <tr>
      <td>
        <a href={userHref(user.id)} onClick={() => rememberUser(user)} class="table__primary-link">{user.username}</a>
      </td>
      <td class="table__email">
        {user.email}
        {!user.email_verified && <span class="table__note">Not verified</span>}
      </td>
      <td>{user.role === 'admin' ? <Tag tone="blue">Admin</Tag> : 'User'}</td>
      <td><StatusTag user={user} withEnd /></td>
      <td class="table__date"><time dateTime={user.created_at} title={user.created_at}>{formatDateTime(user.created_at)}</time></td>
      <td class="table__date">{user.last_login_at ? <time dateTime={user.last_login_at} title={user.last_login_at}>{formatDateTime(user.last_login_at)}</time> : <span class="secondary">Never</span>}</td>
      <td class="table__cell--numeric">{formatNumber(user.sessions)}</td>
    </tr>
  )
}

/** Suspended (maybe until a date), or active; a suspension whose end has passed no longer counts. */
export function StatusTag ({ user, withEnd = false }: { user: AdminUser, withEnd?: boolean }) {
  if (!isSuspended(user)) return <Tag tone="green">Active</Tag>
  return (
    <>
      <Tag tone="red">Suspended</Tag>
      {withEnd && user.suspended_until && <span class="table__note">until {formatDateTime(user.suspended_until)}</span>}
    </>
  )
}

export function isSuspended (user: AdminUser): boolean {
  return user.status === 'suspended' && (user.suspended_until === null || Date.parse(user.suspended_until) > Date.now())
}

interface PaginationProps {
  /** A new page or sort is loading: the cursor on screen belongs to the old one. */
  busy: boolean
  page?: number
  hasPrevious: boolean
  hasNext: boolean
  onFirst?: () => void
  onPrevious: () => void
  onNext: () => void
}

function Pagination ({ busy, page, hasPrevious, hasNext, onFirst, onPrevious, onNext }: PaginationProps) {
  if (!hasPrevious && !hasNext && onFirst === undefined) return null
  // Keyed: without keys Preact would turn the focused "Next" button into "Previous" on the
  // last page, and a second Enter would go back. A button that goes away hands focus to the count.
  return (
    <nav class="pagination" aria-label="Pages of results">
      {onFirst && !hasPrevious && <Button key="first" variant="secondary" busy={busy} onClick={onFirst}>First page</Button>}
      {hasPrevious && <Button key="previous" variant="secondary" busy={busy} onClick={onPrevious}>‹ Previous page</Button>}
      {page !== undefined && <span key="page" class="pagination__page" aria-current="page">Page {page}</span>}
      {hasNext && <Button key="next" variant="secondary" busy={busy} onClick={onNext}>Next page ›</Button>}
    </nav>
  )
}
