import { fileURLToPath } from "node:url"
import { sql } from "drizzle-orm"
import { type MigrationConfig, readMigrationFiles } from "drizzle-orm/migrator"
import type { Drizzle } from "./handle.js"

/** The folder drizzle-kit generates the standalone schema's migrations into; shipped with the package. */
export const MIGRATIONS_FOLDER = fileURLToPath(new URL("../../drizzle", import.meta.url))

/**
 * The standalone schema's migrations keep their own bookkeeping table. Drizzle
 * applies only migrations dated after the newest row of its table, so sharing
 * the application's `drizzle.__drizzle_migrations` made one history skip the
 * other's migrations, whichever ran second.
 */
export const MIGRATIONS_TABLE = "__effect_session_repo_migrations"
export const MIGRATIONS_SCHEMA = "drizzle"

export const migration_config: MigrationConfig = {
  migrationsFolder: MIGRATIONS_FOLDER,
  migrationsTable: MIGRATIONS_TABLE,
  migrationsSchema: MIGRATIONS_SCHEMA,
}

/**
 * Upgrades a database migrated by 0.1, which recorded its migrations in the
 * shared `drizzle.__drizzle_migrations`: those rows (recognised by the hash of
 * each shipped migration) move to this package's own table, so neither
 * history skips the other's migrations from then on. Idempotent; a no-op on a
 * database 0.1 never migrated.
 */
export const adopt_shared_migration_rows = async (db: Drizzle): Promise<void> => {
  const shared = await db.execute(
    sql`SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  )
  if ((shared as unknown as { rows: Array<{ present: boolean }> }).rows[0]?.present !== true) return
  const ours = readMigrationFiles(migration_config).map((migration) => migration.hash)
  await db.execute(sql.raw(`CREATE SCHEMA IF NOT EXISTS "${MIGRATIONS_SCHEMA}"`))
  // the same table Drizzle's migrator creates
  await db.execute(
    sql.raw(
      `CREATE TABLE IF NOT EXISTS "${MIGRATIONS_SCHEMA}"."${MIGRATIONS_TABLE}" (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`,
    ),
  )
  // one statement, so a failure moves nothing
  await db.execute(sql`
    WITH moved AS (
      DELETE FROM drizzle.__drizzle_migrations
      WHERE hash IN (${sql.join(
        ours.map((hash) => sql`${hash}`),
        sql`, `,
      )})
      RETURNING hash, created_at
    )
    INSERT INTO ${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(MIGRATIONS_TABLE)} (hash, created_at)
    SELECT hash, created_at FROM moved
    WHERE NOT EXISTS (
      SELECT 1 FROM ${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(MIGRATIONS_TABLE)} mine
      WHERE mine.hash = moved.hash)
    ORDER BY created_at`)
}

/** The standalone schema's migrations on `db`, through its driver's Drizzle migrator. */
export const standalone_migrations =
  <D extends Drizzle>(db: D, driver_migrate: (db: D, config: MigrationConfig) => Promise<void>) =>
  async (): Promise<void> => {
    await adopt_shared_migration_rows(db)
    await driver_migrate(db, migration_config)
  }
