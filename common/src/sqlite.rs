//! Schema upgrades of the SQLite files the programs keep: the player's
//! `state.db` and the proof-of-play collector's database.

use rusqlite::Connection;

/// A column a table gained in a later release: (table, column, definition).
pub type AddedColumn = (&'static str, &'static str, &'static str);

/// Adds the columns an older database lacks (SQLite has no `ADD COLUMN IF
/// NOT EXISTS`).
pub fn add_missing_columns(db: &Connection, added: &[AddedColumn]) -> rusqlite::Result<()> {
    for (table, column, definition) in added {
        let present: bool = db.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |row| row.get(0),
        )?;
        if !present {
            db.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_table_gains_its_columns_once() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch("CREATE TABLE pop (seq INTEGER); INSERT INTO pop VALUES (1);")
            .unwrap();
        let added: &[AddedColumn] = &[("pop", "plays", "INTEGER NOT NULL DEFAULT 1")];
        add_missing_columns(&db, added).unwrap();
        // Again, as at every start: nothing left to add.
        add_missing_columns(&db, added).unwrap();
        let plays: i64 = db
            .query_row("SELECT plays FROM pop WHERE seq = 1", [], |row| row.get(0))
            .unwrap();
        assert_eq!(plays, 1);
    }
}
