-- (Re)create the per-connection staging table operators are bulk-loaded into before
-- lookup_operators_upsert.sql (see stage_create.sql for why #temp tables and these types).
-- details = 1: the row comes from user.get; 0: only the ID is known. The loader stages each
-- user once (no key here: every column is bulk-friendly nvarchar(max) or int).
IF OBJECT_ID(N'tempdb..#stage_operators', N'U') IS NOT NULL DROP TABLE #stage_operators;
CREATE TABLE #stage_operators (
        user_id nvarchar(max) COLLATE DATABASE_DEFAULT NOT NULL,
        name nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        last_name nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        email nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        phone_inner nvarchar(max) COLLATE DATABASE_DEFAULT NULL,
        active int NULL,
        details int NOT NULL
);
