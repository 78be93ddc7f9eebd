import type pg from "pg"

// pg.Client.connect has two forms, a promise and a callback (pg.Pool uses the
// callback); a Client subclass that connects its own way serves both from one
// promise.

export type ConnectCallback = (error: Error | null, client?: pg.Client) => void

/** `connected` as `connect(callback?)` answers: the promise itself, or handed to `callback`. */
export const answer_connect = (
  connected: Promise<pg.Client>,
  callback: ConnectCallback | undefined,
): Promise<pg.Client> | undefined => {
  if (callback === undefined) return connected
  connected.then(
    (client) => callback(null, client),
    (error: Error) => callback(error),
  )
  return undefined
}
