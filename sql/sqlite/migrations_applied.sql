SELECT version FROM b24sync_migrations ORDER BY version;
