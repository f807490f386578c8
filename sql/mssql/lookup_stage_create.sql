-- (Re)create the per-connection staging table a batch's normalised phones are bulk-loaded
-- into (see stage_create.sql for why #temp tables, dropped first, and why these types).
-- e164, extension and digits_rev take the binary collation of their b24sync_lead_phones
-- columns, so lookup_phones_sync.sql compares them without a collation conflict.
IF OBJECT_ID(N'tempdb..#stage_phones', N'U') IS NOT NULL DROP TABLE #stage_phones;
CREATE TABLE #stage_phones (
        seq int NOT NULL PRIMARY KEY,
        lead_id int NOT NULL,
        contact_id nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        value nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        e164 nvarchar(max) COLLATE Latin1_General_BIN2 NULL,
        extension nvarchar(max) COLLATE Latin1_General_BIN2 NULL,
        digits_rev nvarchar(max) COLLATE Latin1_General_BIN2 NULL,
        normalisable int NOT NULL,
        reason nvarchar(max) COLLATE DATABASE_DEFAULT NULL
);
