-- Tables and indexes of the main database, to report what a migration created.
SELECT type, name FROM main.sqlite_master
WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'
ORDER BY type, name;
