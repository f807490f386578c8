-- Open the transaction a migration runs in (the file, then its checksum): all or nothing.
SET XACT_ABORT ON;
BEGIN TRANSACTION;
