import { useEffect, useState } from 'preact/hooks'

// Screens live in the URL's fragment (#/users/42, #/?q=ann&role=admin), so the browser's back
// and forward buttons move between them and the fragment never reaches the server or a log.

export type Route =
  | { name: 'users', params: URLSearchParams }
  | { name: 'user', id: number }
  | { name: 'invite' }
  | { name: 'not-found' }

export function parseRoute (hash: string): Route {
  const [path, query = ''] = hash.replace(/^#/, '').split('?', 2)
  if (path === '' || path === '/') return { name: 'users', params: new URLSearchParams(query) }
  if (path === '/invite') return { name: 'invite' }
  const user = /^\/users\/([1-9]\d{0,9})$/.exec(path)
  if (user) return { name: 'user', id: Number(user[1]) }
  return { name: 'not-found' }
}

export function useRoute (): Route {
  const [hash, setHash] = useState(location.hash)
  useEffect(() => {
    const update = () => setHash(location.hash)
    addEventListener('hashchange', update)
    return () => removeEventListener('hashchange', update)
  }, [])
  return parseRoute(hash)
}

export function navigate (hash: string): void {
  if (location.hash !== hash) location.hash = hash
}

export function usersHref (params: URLSearchParams): string {
  const query = params.toString()
  return query === '' ? '#/' : `#/?${query}`
}

export const userHref = (id: number) => `#/users/${id}`
