-- Upsert one staged batch of one entity ({{stage}}, {{stage_multi}}, #stage_errors; see
-- stage_create.sql) into the entity's tables in ONE transaction, set-based, and return what
-- changed as one row. A template: src/load/mssql/entity_sql.rs fills in the entity's table
-- and column names from the schema description (for the lead: the Oktell tables); the
-- counts keep the lead's names (leads_inserted, ...) for every entity.
--
-- Why UPDATE + INSERT and not MERGE: some T-SQL engines reject MERGE outright, and on SQL
-- Server itself MERGE has a long record of concurrency and correctness bugs (races between
-- the NOT MATCHED check and the insert without HOLDLOCK, wrong results with filtered indexes
-- and triggers). UPDATE ... FROM ... JOIN followed by INSERT ... WHERE NOT EXISTS with
-- (UPDLOCK, SERIALIZABLE) on the existence check is as atomic inside this transaction,
-- reports exact @@ROWCOUNTs, and works on every engine the notes cover.
--
-- "Changed" is decided NULL-safely and exactly: `NOT EXISTS (SELECT <target> INTERSECT
-- SELECT <staged>)` treats NULL = NULL, and text is compared as varbinary so that a change
-- of case or of trailing spaces counts (the database's collation is usually case-insensitive
-- and `=` ignores trailing spaces). ntext cannot be compared at all, so a long-text column (sql_COMMENTS)
-- is cast to nvarchar(max) first. Dates are compared as datetime, the tables' type.
--
-- XACT_ABORT makes any failing statement roll the whole transaction back; the loader then
-- bisects the batch to isolate the record(s) the server rejects (src/load/mssql/mod.rs).
SET NOCOUNT ON;
SET XACT_ABORT ON;

DECLARE @leads_staged int = (SELECT COUNT(*) FROM {{stage}});
DECLARE @leads_inserted int = 0;
DECLARE @leads_updated int = 0;
DECLARE @contacts_written int = 0;
DECLARE @contacts_deleted int = 0;
DECLARE @error_rows int = (SELECT COUNT(*) FROM #stage_errors);
DECLARE @error_rows_new int = 0;

BEGIN TRANSACTION;

-- 1. Records that exist and differ: update in place (their Id is kept).
UPDATE t SET
{{set_columns}}
FROM dbo.{{table}} AS t WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN {{stage}} AS s ON s.sql_ID = t.sql_ID
WHERE NOT EXISTS (
    SELECT
{{target_compared}}
    INTERSECT
    SELECT
{{staged_compared}}
);
SET @leads_updated = @@ROWCOUNT;

-- 2. Records not there yet: insert, in Bitrix24 ID order so new Ids follow it.
INSERT INTO dbo.{{table}} (
        sql_ID,
{{columns}}
)
SELECT
        s.sql_ID,
{{staged_values}}
FROM {{stage}} AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.{{table}} AS t WITH (UPDLOCK, SERIALIZABLE)
    WHERE t.sql_ID = s.sql_ID
)
ORDER BY s.sql_ID;
SET @leads_inserted = @@ROWCOUNT;

-- 3. Multi-field values (the lead's contact values): the batch's records get exactly the
-- staged set. A staged value matches a stored one by ({{multi_owner}}, {{multi_value_id}}); a
-- value without an ID (never seen from Bitrix24, but legal) matches by its whole content. Delete what Bitrix24 no longer has, and
-- the extra copies of a value that the original scripts may have left (keeping the lowest Id).
DELETE c
FROM dbo.{{multi_table}} AS c
INNER JOIN {{stage}} AS l ON l.sql_ID = c.{{multi_owner}}
WHERE NOT EXISTS (
        SELECT 1 FROM {{stage_multi}} AS s
        WHERE s.{{multi_owner}} = c.{{multi_owner}}
          AND (CAST(s.{{multi_value_id}} AS varbinary(max)) = CAST(c.{{multi_value_id}} AS varbinary(max))
               OR (s.{{multi_value_id}} IS NULL AND c.{{multi_value_id}} IS NULL
                   AND EXISTS (SELECT CAST(s.sql_TYPE_ID AS varbinary(max)), CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max))
                               INTERSECT
                               SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)))))
    )
   OR EXISTS (
        SELECT 1 FROM dbo.{{multi_table}} AS d
        WHERE d.{{multi_owner}} = c.{{multi_owner}}
          AND d.Id < c.Id
          AND (CAST(d.{{multi_value_id}} AS varbinary(max)) = CAST(c.{{multi_value_id}} AS varbinary(max))
               OR (d.{{multi_value_id}} IS NULL AND c.{{multi_value_id}} IS NULL
                   AND EXISTS (SELECT CAST(d.sql_TYPE_ID AS varbinary(max)), CAST(d.sql_VALUE_TYPE AS varbinary(max)), CAST(d.sql_VALUE AS varbinary(max))
                               INTERSECT
                               SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)))))
    );
SET @contacts_deleted = @@ROWCOUNT;

-- Values whose type or text changed under the same value ID: update in place.
UPDATE c SET
        c.sql_VALUE_TYPE = s.sql_VALUE_TYPE,
        c.sql_VALUE = s.sql_VALUE,
        c.sql_TYPE_ID = s.sql_TYPE_ID
FROM dbo.{{multi_table}} AS c WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN {{stage_multi}} AS s
        ON s.{{multi_owner}} = c.{{multi_owner}}
       AND CAST(s.{{multi_value_id}} AS varbinary(max)) = CAST(c.{{multi_value_id}} AS varbinary(max))
WHERE NOT EXISTS (
    SELECT CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)), CAST(c.sql_TYPE_ID AS varbinary(max))
    INTERSECT
    SELECT CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max)), CAST(s.sql_TYPE_ID AS varbinary(max))
);
SET @contacts_written = @@ROWCOUNT;

-- New values: insert in Bitrix24's order.
INSERT INTO dbo.{{multi_table}} ({{multi_owner}}, {{multi_value_id}}, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
SELECT s.{{multi_owner}}, s.{{multi_value_id}}, s.sql_VALUE_TYPE, s.sql_VALUE, s.sql_TYPE_ID
FROM {{stage_multi}} AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.{{multi_table}} AS c WITH (UPDLOCK, SERIALIZABLE)
    WHERE c.{{multi_owner}} = s.{{multi_owner}}
      AND (CAST(c.{{multi_value_id}} AS varbinary(max)) = CAST(s.{{multi_value_id}} AS varbinary(max))
           OR (c.{{multi_value_id}} IS NULL AND s.{{multi_value_id}} IS NULL
               AND EXISTS (SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max))
                           INTERSECT
                           SELECT CAST(s.sql_TYPE_ID AS varbinary(max)), CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max)))))
)
ORDER BY s.seq;
SET @contacts_written = @contacts_written + @@ROWCOUNT;

{{#solution}}
-- 4. Solution (the lead only): one row per lead that has one. Remove it (and extra copies)
-- where the lead has none now, update it where it changed, insert it where it is missing.
DELETE o
FROM dbo.{{solution_table}} AS o
INNER JOIN {{stage}} AS l ON l.sql_ID = o.sql_LEAD_ID
WHERE l.sql_solution IS NULL
   OR EXISTS (
        SELECT 1 FROM dbo.{{solution_table}} AS d
        WHERE d.sql_LEAD_ID = o.sql_LEAD_ID AND d.Id < o.Id
    );

UPDATE o SET o.sql_solution = l.sql_solution
FROM dbo.{{solution_table}} AS o WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN {{stage}} AS l ON l.sql_ID = o.sql_LEAD_ID
WHERE l.sql_solution IS NOT NULL
  AND (o.sql_solution IS NULL
       OR CAST(o.sql_solution AS varbinary(max)) <> CAST(l.sql_solution AS varbinary(max)));

INSERT INTO dbo.{{solution_table}} (sql_LEAD_ID, sql_solution)
SELECT l.sql_ID, l.sql_solution
FROM {{stage}} AS l
WHERE l.sql_solution IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM dbo.{{solution_table}} AS o WITH (UPDLOCK, SERIALIZABLE)
    WHERE o.sql_LEAD_ID = l.sql_ID
)
ORDER BY l.sql_ID;
{{/solution}}

-- 5. Error rows. For every record of the batch (loaded records, and rejected ones that have
-- an ID) the table ends up holding exactly its current problems: rows whose problem is gone
-- are deleted (so a record that now loads cleanly loses them), as are extra copies; a problem
-- still there keeps its row and first-seen date (its JSON is refreshed); a new one is added.
-- A row is matched by (sql_ID, sql_error); rows without an ID also by their JSON, and are
-- never deleted, since no batch can say which record they belonged to.
-- Every match on sql_ID says `=` first (sargable: a seek on the error table's index on
-- sql_ID, migrations 0007 and 0010), then compares the bytes: `=` alone would ignore case
-- and trailing spaces, and the byte comparison alone cannot use the index.
DELETE e
FROM dbo.{{error_table}} AS e
WHERE e.sql_ID IN (SELECT CONVERT(nvarchar(20), l.sql_ID) FROM {{stage}} AS l
                   UNION
                   SELECT s.sql_ID FROM #stage_errors AS s WHERE s.sql_ID IS NOT NULL)
  AND (NOT EXISTS (
            SELECT 1 FROM #stage_errors AS s
            WHERE s.sql_ID = e.sql_ID
              AND CAST(s.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
              AND CAST(s.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
        )
       OR EXISTS (
            SELECT 1 FROM dbo.{{error_table}} AS d
            WHERE d.sql_ID = e.sql_ID
              AND CAST(d.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
              AND CAST(d.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
              AND d.Id < e.Id
        ));

UPDATE e SET e.{{error_json}} = s.{{error_json}}
FROM dbo.{{error_table}} AS e WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_errors AS s
        ON s.sql_ID = e.sql_ID
       AND CAST(s.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
       AND CAST(s.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
WHERE NOT EXISTS (
    SELECT CAST(CAST(e.{{error_json}} AS nvarchar(max)) AS varbinary(max))
    INTERSECT
    SELECT CAST(s.{{error_json}} AS varbinary(max))
);

INSERT INTO dbo.{{error_table}} (sql_ID, sql_error, {{error_json}}, sql_date_error)
SELECT s.sql_ID, s.sql_error, s.{{error_json}}, CAST(s.sql_date_error AS datetime)
FROM #stage_errors AS s
-- Two NOT EXISTS rather than one with an OR, so each is one seek: on the ID, or on NULL.
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.{{error_table}} AS e WITH (UPDLOCK, SERIALIZABLE)
    WHERE e.sql_ID = s.sql_ID
      AND CAST(e.sql_ID AS varbinary(max)) = CAST(s.sql_ID AS varbinary(max))
      AND CAST(e.sql_error AS varbinary(max)) = CAST(s.sql_error AS varbinary(max))
)
  AND NOT EXISTS (
    SELECT 1 FROM dbo.{{error_table}} AS e WITH (UPDLOCK, SERIALIZABLE)
    WHERE s.sql_ID IS NULL
      AND e.sql_ID IS NULL
      AND CAST(e.sql_error AS varbinary(max)) = CAST(s.sql_error AS varbinary(max))
      AND CAST(CAST(e.{{error_json}} AS nvarchar(max)) AS varbinary(max)) = CAST(s.{{error_json}} AS varbinary(max))
)
ORDER BY s.seq;
SET @error_rows_new = @@ROWCOUNT;

COMMIT TRANSACTION;

SELECT
    @leads_inserted AS leads_inserted,
    @leads_updated AS leads_updated,
    @leads_staged - @leads_inserted - @leads_updated AS leads_unchanged,
    @contacts_written AS contacts_written,
    @contacts_deleted AS contacts_deleted,
    @error_rows AS error_rows,
    @error_rows_new AS error_rows_new;
