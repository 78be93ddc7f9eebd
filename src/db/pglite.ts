import { PGlite, type Transaction } from "@electric-sql/pglite"
import { drizzle } from "drizzle-orm/pglite"
import { migrate } from "drizzle-orm/pglite/migrator"
import { Context, Effect, Layer } from "effect"
import { type Database, database_context, type StatementObserver, statement_logger } from "./database.js"
import { DbError } from "./errors.js"
import type { Db } from "./handle.js"
import { standalone_migrations } from "./migrations.js"
import { Notifications } from "./notifications.js"
import { skip_installed_parsers } from "./pglite-client.js"
import { owner_only_data_dir, restrict_to_owner } from "./pglite-files.js"
import { callback_transaction } from "./pglite-transaction.js"
import { pglite_send, sending_with } from "./send.js"
import { pglite_text_times } from "./text-times.js"

export interface PgliteOptions {
  /** Called with the text of every statement sent (never its parameters), e.g. to count queries. */
  readonly on_statement?: StatementObserver
  /** Where the database persists; in memory when absent. */
  readonly data_dir?: string
}

/**
 * `Database` and `Db` on embedded PGlite: one connection, so a transaction
 * excludes every other statement until it ends.
 */
export const layer_pglite = (
  options: PgliteOptions = {},
): Layer.Layer<Database | Db | Notifications, DbError> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const client = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            if (options.data_dir !== undefined) owner_only_data_dir(options.data_dir)
            const client = await PGlite.create({
              ...(options.data_dir === undefined ? {} : { dataDir: options.data_dir }),
              parsers: pglite_text_times,
            })
            try {
              if (options.data_dir !== undefined) restrict_to_owner(options.data_dir)
            } catch (error) {
              await client.close()
              throw error
            }
            return client
          },
          catch: (error) => DbError.from("pglite.open", error),
        }),
        (client) =>
          Effect.promise(async () => {
            await client.close()
            // files PGlite created while it ran
            if (options.data_dir !== undefined) restrict_to_owner(options.data_dir)
          }),
      )
      const logger = statement_logger(options.on_statement)
      const handle = (connection: PGlite | Transaction) =>
        sending_with(
          drizzle({ client: skip_installed_parsers(connection) as PGlite, logger }),
          pglite_send(connection, options.on_statement),
        )
      const pool = handle(client)
      return database_context(
        pool,
        callback_transaction(client, handle),
        standalone_migrations(pool, migrate),
      ).pipe(Context.add(Notifications, pglite_notifications(client)))
    }),
  )

/** LISTEN in process: PGlite delivers a notification once its transaction commits; the connection is never lost. */
const pglite_notifications = (client: PGlite) =>
  Notifications.of({
    listen: (channel, handlers) =>
      Effect.acquireRelease(
        Effect.tryPromise({
          try: () => client.listen(channel, handlers.payload),
          catch: (error) => DbError.from("notifications.listen", error),
        }),
        (unlisten) => Effect.promise(() => unlisten().catch(() => {})),
      ).pipe(Effect.andThen(Effect.sync(() => handlers.listening(true)))),
  })
