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

const present = async (db: Drizzle) => {
  const result = await db.execute(sql`
    SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS shared,
           to_regclass(${`${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`}) IS NOT NULL AS own`)
  return (result as unknown as { rows: Array<{ shared: boolean; own: boolean }> }).rows[0]
}

/**
 * Upgrades a database migrated by 0.1, which recorded its migrations in the
 * shared `drizzle.__drizzle_migrations`: those rows move to this package's own
 * table, so neither history skips the other's migrations from then on. A row
 * is 0.1's when both its hash and its date are those of a shipped migration
 * (an app that copied the file into its own history has its own date). Runs
 * once, before this package's table exists, in one transaction.
 */
export const adopt_shared_migration_rows = async (db: Drizzle): Promise<void> => {
  const tables = await present(db)
  if (tables?.shared !== true || tables.own) return
  const shipped = readMigrationFiles(migration_config).map(
    (migration) => sql`(${migration.hash}, ${migration.folderMillis}::bigint)`,
  )
  const own = sql`${sql.identifier(MIGRATIONS_SCHEMA)}.${sql.identifier(MIGRATIONS_TABLE)}`
  await db.transaction(async (tx) => {
    await tx.execute(sql`CREATE SCHEMA IF NOT EXISTS ${sql.identifier(MIGRATIONS_SCHEMA)}`)
    // the same table Drizzle's migrator creates
    await tx.execute(
      sql`CREATE TABLE IF NOT EXISTS ${own} (id SERIAL PRIMARY KEY, hash text NOT NULL, created_at bigint)`,
    )
    await tx.execute(sql`
      WITH moved AS (
        DELETE FROM drizzle.__drizzle_migrations
        WHERE (hash, created_at) IN (${sql.join(shipped, sql`, `)})
        RETURNING hash, created_at
      )
      INSERT INTO ${own} (hash, created_at) SELECT hash, created_at FROM moved ORDER BY created_at`)
  })
}

/** The standalone schema's migrations on `db`, through its driver's Drizzle migrator. */
export const standalone_migrations =
  <D extends Drizzle>(db: D, driver_migrate: (db: D, config: MigrationConfig) => Promise<void>) =>
  async (): Promise<void> => {
    await adopt_shared_migration_rows(db)
    await driver_migrate(db, migration_config)
  }
