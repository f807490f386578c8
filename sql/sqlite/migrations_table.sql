-- Bootstrap: which numbered migrations this database has had (see 0001_*.sql, ...).
CREATE TABLE IF NOT EXISTS b24sync_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT,
    applied_at TEXT
);
