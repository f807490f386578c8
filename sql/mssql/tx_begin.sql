-- Open the transaction a migration, a batch or a small write runs in: all or nothing.
SET XACT_ABORT ON;
BEGIN TRANSACTION;
