import { dictionary } from "@zxcvbn-ts/language-common"

// What a new password must be, after NIST SP 800-63B-4 (August 2025), section
// 3.1.1.2, "Password Verifiers". The password is this app's only factor, so
// the minimum is 15 characters (8 is allowed only where the password is one
// factor of several). Up to 200 are permitted (NIST: at least 64), every
// character is allowed and counts as one code point of the form that is hashed
// (NFC), and there is no other composition rule. A password found in a
// blocklist of commonly used, expected or compromised values is refused, and
// so is one containing the username (a context-specific word). Passwords set
// before these rules still log in; the login then asks for a change.

export const MIN_PASSWORD_CHARACTERS = 15
export const MAX_PASSWORD_CHARACTERS = 200

/** The rule in words, as the page shows it before a password is chosen. */
export const PASSWORD_RULE = `At least ${MIN_PASSWORD_CHARACTERS} characters (up to ${MAX_PASSWORD_CHARACTERS}); any characters, spaces and emoji included. Not a commonly used or leaked password, and not containing your username.`

// zxcvbn-ts's list of about 49,000 common passwords from leaked password
// lists (MIT), all lowercase: it is compared case-insensitively.
const COMMON_PASSWORDS: ReadonlySet<string> = new Set(dictionary["passwords-common"])

/** Characters as NIST counts them: the code points of the form that is hashed. */
const characters = (password: string) => [...password.normalize("NFC")]

/** Why `username` may not choose `password`, in words a person understands; undefined when it may. */
export const password_problem = (password: string, username: string): string | undefined => {
  const chars = characters(password)
  if (chars.length < MIN_PASSWORD_CHARACTERS)
    return `The password is too short: use at least ${MIN_PASSWORD_CHARACTERS} characters (it has ${chars.length}). A few words together make a long one that is easy to remember.`
  if (chars.length > MAX_PASSWORD_CHARACTERS)
    return `The password is too long: use at most ${MAX_PASSWORD_CHARACTERS} characters.`
  const lowercase = chars.join("").toLowerCase()
  if (COMMON_PASSWORDS.has(lowercase))
    return "This password is on a list of commonly used and leaked passwords, which attackers try first: choose another."
  // the most expected value of all, which no list can hold in every length
  if (new Set(chars).size === 1) return "The password is one character repeated: choose another."
  if (lowercase.includes(username.toLowerCase())) return "The password must not contain your username."
  return undefined
}
