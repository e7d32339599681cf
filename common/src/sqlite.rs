//! Schemas of the SQLite files the programs keep (the player's `state.db`,
//! the proof-of-play collector's database) as ordered lists of changes.
//!
//! `PRAGMA user_version` counts the migrations a database has had; opening
//! it applies the rest, each in its own transaction with the count, so a
//! power cut leaves it at one version or the next.
//!
//! Invariant: a migration only adds (tables, columns with a default or
//! nullable, rows), never renames or drops. A program rolled back to an
//! older version (a system update that did not take) then still opens a
//! database a newer one migrated: it warns and goes on.

use rusqlite::{Connection, TransactionBehavior};

/// One change of a schema, applied once.
#[derive(Debug)]
pub struct Migration {
    /// What it brings, for the log.
    pub brings: &'static str,
    pub sql: &'static str,
}

/// Brings `db` to the end of `migrations`.
///
/// The count is read and advanced under the write lock (an immediate
/// transaction per migration): two connections opening the same file at
/// once (the collector and `phare pop export`, the player's store and its
/// outbox) each find the other's migrations done, and none runs twice.
pub fn migrate(db: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<()> {
    loop {
        let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
        let applied = usize::try_from(applied).unwrap_or(0);
        let Some(migration) = migrations.get(applied) else {
            if applied > migrations.len() {
                tracing::warn!(
                    schema = applied,
                    known = migrations.len(),
                    "the database was migrated by a newer version: its additions are left alone"
                );
            }
            return Ok(());
        };
        tx.execute_batch(migration.sql)?;
        tx.pragma_update(None, "user_version", (applied + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = applied + 1, "{}", migration.brings);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Migration] = &[
        Migration {
            brings: "a table",
            sql: "CREATE TABLE plays (seq INTEGER PRIMARY KEY);",
        },
        Migration {
            brings: "a column",
            sql: "ALTER TABLE plays ADD COLUMN plays INTEGER NOT NULL DEFAULT 1;",
        },
    ];

    fn version(db: &Connection) -> i64 {
        db.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn migrations_run_once_and_a_newer_database_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Connection::open(dir.path().join("state.db")).unwrap();
        migrate(&mut db, SCHEMA).unwrap();
        // A second run would fail: the table and the column exist.
        migrate(&mut db, SCHEMA).unwrap();
        assert_eq!(version(&db), SCHEMA.len() as i64);
        // Rolled back: an older program knows fewer migrations.
        migrate(&mut db, &SCHEMA[..1]).unwrap();
        assert_eq!(version(&db), SCHEMA.len() as i64);
    }

    #[test]
    fn a_failed_migration_leaves_the_database_at_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Connection::open(dir.path().join("state.db")).unwrap();
        let broken = [
            Migration {
                brings: "a table",
                sql: SCHEMA[0].sql,
            },
            Migration {
                brings: "a column, then a mistake",
                sql: "ALTER TABLE plays ADD COLUMN plays INTEGER; SELECT * FROM nowhere;",
            },
        ];
        assert!(migrate(&mut db, &broken).is_err());
        assert_eq!(version(&db), 1);
        // The column of the failed one went with it: the right list applies.
        migrate(&mut db, SCHEMA).unwrap();
        assert_eq!(version(&db), 2);
    }

    #[test]
    fn two_connections_opening_a_new_file_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let path = dir.path().join(format!("pop-{round}.db"));
            let start = std::sync::Barrier::new(2);
            std::thread::scope(|threads| {
                let openers: Vec<_> = (0..2)
                    .map(|_| {
                        threads.spawn(|| {
                            let mut db = Connection::open(&path).unwrap();
                            start.wait();
                            migrate(&mut db, SCHEMA)
                        })
                    })
                    .collect();
                for opener in openers {
                    opener.join().unwrap().unwrap();
                }
            });
            assert_eq!(version(&Connection::open(&path).unwrap()), 2);
        }
    }
}
