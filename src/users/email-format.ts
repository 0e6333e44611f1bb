import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { UserCreate } from './users.schemas.js'

// Code outside HTTP (the admin CLI, the FastAPI import) must accept exactly the addresses signup
// accepts, so it compiles signup's own email schema with the same Ajv + ajv-formats ("full" mode).
const checkEmail = addFormats.default(new Ajv({ strict: false })).compile(UserCreate.properties.email)

/** Returns why the address would be refused at signup, or undefined. */
export function emailProblem (email: string): string | undefined {
  if (email.length === 0) return 'email: must not be empty'
  if (checkEmail(email)) return undefined
  return checkEmail.errors?.[0]?.keyword === 'maxLength'
    ? `email: must be at most ${UserCreate.properties.email.maxLength} characters`
    : 'email: must be a valid email address'
}
