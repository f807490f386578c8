-- After b24sync applied a migration file (which records itself with checksum N'manual'),
-- store the checksum of the file as shipped, so a later edit of an applied file is noticed.
UPDATE dbo.b24sync_migrations SET checksum = @P1 WHERE version = @P2;
