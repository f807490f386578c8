-- Upsert one staged batch (#stage_leads, #stage_contacts, #stage_errors; see stage_create.sql)
-- into the Oktell tables in ONE transaction, set-based, and return what changed as one row.
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
-- and `=` ignores trailing spaces). ntext cannot be compared at all, so sql_COMMENTS is cast
-- to nvarchar(max) first. Dates are compared as datetime, the Oktell type.
--
-- XACT_ABORT makes any failing statement roll the whole transaction back; the loader then
-- bisects the batch to isolate the lead(s) the server rejects (src/load/mssql/mod.rs).
SET NOCOUNT ON;
SET XACT_ABORT ON;

DECLARE @leads_staged int = (SELECT COUNT(*) FROM #stage_leads);
DECLARE @leads_inserted int = 0;
DECLARE @leads_updated int = 0;
DECLARE @contacts_written int = 0;
DECLARE @contacts_deleted int = 0;
DECLARE @error_rows int = (SELECT COUNT(*) FROM #stage_errors);
DECLARE @error_rows_new int = 0;

BEGIN TRANSACTION;

-- 1. Leads that exist and differ: update in place (their Id is kept).
UPDATE t SET
        t.sql_ADDRESS = s.sql_ADDRESS,
        t.sql_ADDRESS_2 = s.sql_ADDRESS_2,
        t.sql_ADDRESS_CITY = s.sql_ADDRESS_CITY,
        t.sql_ADDRESS_COUNTRY = s.sql_ADDRESS_COUNTRY,
        t.sql_ADDRESS_COUNTRY_CODE = s.sql_ADDRESS_COUNTRY_CODE,
        t.sql_ADDRESS_POSTAL_CODE = s.sql_ADDRESS_POSTAL_CODE,
        t.sql_ADDRESS_PROVINCE = s.sql_ADDRESS_PROVINCE,
        t.sql_ADDRESS_REGION = s.sql_ADDRESS_REGION,
        t.sql_ASSIGNED_BY_ID = s.sql_ASSIGNED_BY_ID,
        t.sql_BIRTHDATE = CAST(s.sql_BIRTHDATE AS datetime),
        t.sql_COMMENTS = s.sql_COMMENTS,
        t.sql_COMPANY_ID = s.sql_COMPANY_ID,
        t.sql_COMPANY_TITLE = s.sql_COMPANY_TITLE,
        t.sql_CONTACT_ID = s.sql_CONTACT_ID,
        t.sql_CREATED_BY_ID = s.sql_CREATED_BY_ID,
        t.sql_CURRENCY_ID = s.sql_CURRENCY_ID,
        t.sql_DATE_CLOSED = CAST(s.sql_DATE_CLOSED AS datetime),
        t.sql_DATE_CREATE = CAST(s.sql_DATE_CREATE AS datetime),
        t.sql_DATE_MODIFY = CAST(s.sql_DATE_MODIFY AS datetime),
        t.sql_LAST_NAME = s.sql_LAST_NAME,
        t.sql_MODIFY_BY_ID = s.sql_MODIFY_BY_ID,
        t.sql_NAME = s.sql_NAME,
        t.sql_OPENED = s.sql_OPENED,
        t.sql_OPPORTUNITY = s.sql_OPPORTUNITY,
        t.sql_ORIGIN_ID = s.sql_ORIGIN_ID,
        t.sql_ORIGINATOR_ID = s.sql_ORIGINATOR_ID,
        t.sql_POST = s.sql_POST,
        t.sql_SECOND_NAME = s.sql_SECOND_NAME,
        t.sql_SOURCE_DESCRIPTION = s.sql_SOURCE_DESCRIPTION,
        t.sql_SOURCE_ID = s.sql_SOURCE_ID,
        t.sql_STATUS_DESCRIPTION = s.sql_STATUS_DESCRIPTION,
        t.sql_STATUS_ID = s.sql_STATUS_ID,
        t.sql_TITLE = s.sql_TITLE
FROM dbo.bitrix_leads AS t WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_leads AS s ON s.sql_ID = t.sql_ID
WHERE NOT EXISTS (
    SELECT
            CAST(t.sql_ADDRESS AS varbinary(max)),
            CAST(t.sql_ADDRESS_2 AS varbinary(max)),
            CAST(t.sql_ADDRESS_CITY AS varbinary(max)),
            CAST(t.sql_ADDRESS_COUNTRY AS varbinary(max)),
            CAST(t.sql_ADDRESS_COUNTRY_CODE AS varbinary(max)),
            CAST(t.sql_ADDRESS_POSTAL_CODE AS varbinary(max)),
            CAST(t.sql_ADDRESS_PROVINCE AS varbinary(max)),
            CAST(t.sql_ADDRESS_REGION AS varbinary(max)),
            CAST(t.sql_ASSIGNED_BY_ID AS varbinary(max)),
            t.sql_BIRTHDATE,
            CAST(CAST(t.sql_COMMENTS AS nvarchar(max)) AS varbinary(max)),
            CAST(t.sql_COMPANY_ID AS varbinary(max)),
            CAST(t.sql_COMPANY_TITLE AS varbinary(max)),
            CAST(t.sql_CONTACT_ID AS varbinary(max)),
            CAST(t.sql_CREATED_BY_ID AS varbinary(max)),
            CAST(t.sql_CURRENCY_ID AS varbinary(max)),
            t.sql_DATE_CLOSED,
            t.sql_DATE_CREATE,
            t.sql_DATE_MODIFY,
            CAST(t.sql_LAST_NAME AS varbinary(max)),
            CAST(t.sql_MODIFY_BY_ID AS varbinary(max)),
            CAST(t.sql_NAME AS varbinary(max)),
            CAST(t.sql_OPENED AS varbinary(max)),
            CAST(t.sql_OPPORTUNITY AS varbinary(max)),
            CAST(t.sql_ORIGIN_ID AS varbinary(max)),
            CAST(t.sql_ORIGINATOR_ID AS varbinary(max)),
            CAST(t.sql_POST AS varbinary(max)),
            CAST(t.sql_SECOND_NAME AS varbinary(max)),
            CAST(t.sql_SOURCE_DESCRIPTION AS varbinary(max)),
            CAST(t.sql_SOURCE_ID AS varbinary(max)),
            CAST(t.sql_STATUS_DESCRIPTION AS varbinary(max)),
            CAST(t.sql_STATUS_ID AS varbinary(max)),
            CAST(t.sql_TITLE AS varbinary(max))
    INTERSECT
    SELECT
            CAST(s.sql_ADDRESS AS varbinary(max)),
            CAST(s.sql_ADDRESS_2 AS varbinary(max)),
            CAST(s.sql_ADDRESS_CITY AS varbinary(max)),
            CAST(s.sql_ADDRESS_COUNTRY AS varbinary(max)),
            CAST(s.sql_ADDRESS_COUNTRY_CODE AS varbinary(max)),
            CAST(s.sql_ADDRESS_POSTAL_CODE AS varbinary(max)),
            CAST(s.sql_ADDRESS_PROVINCE AS varbinary(max)),
            CAST(s.sql_ADDRESS_REGION AS varbinary(max)),
            CAST(s.sql_ASSIGNED_BY_ID AS varbinary(max)),
            CAST(s.sql_BIRTHDATE AS datetime),
            CAST(s.sql_COMMENTS AS varbinary(max)),
            CAST(s.sql_COMPANY_ID AS varbinary(max)),
            CAST(s.sql_COMPANY_TITLE AS varbinary(max)),
            CAST(s.sql_CONTACT_ID AS varbinary(max)),
            CAST(s.sql_CREATED_BY_ID AS varbinary(max)),
            CAST(s.sql_CURRENCY_ID AS varbinary(max)),
            CAST(s.sql_DATE_CLOSED AS datetime),
            CAST(s.sql_DATE_CREATE AS datetime),
            CAST(s.sql_DATE_MODIFY AS datetime),
            CAST(s.sql_LAST_NAME AS varbinary(max)),
            CAST(s.sql_MODIFY_BY_ID AS varbinary(max)),
            CAST(s.sql_NAME AS varbinary(max)),
            CAST(s.sql_OPENED AS varbinary(max)),
            CAST(s.sql_OPPORTUNITY AS varbinary(max)),
            CAST(s.sql_ORIGIN_ID AS varbinary(max)),
            CAST(s.sql_ORIGINATOR_ID AS varbinary(max)),
            CAST(s.sql_POST AS varbinary(max)),
            CAST(s.sql_SECOND_NAME AS varbinary(max)),
            CAST(s.sql_SOURCE_DESCRIPTION AS varbinary(max)),
            CAST(s.sql_SOURCE_ID AS varbinary(max)),
            CAST(s.sql_STATUS_DESCRIPTION AS varbinary(max)),
            CAST(s.sql_STATUS_ID AS varbinary(max)),
            CAST(s.sql_TITLE AS varbinary(max))
);
SET @leads_updated = @@ROWCOUNT;

-- 2. Leads not there yet: insert, in Bitrix24 ID order so new Ids follow it.
INSERT INTO dbo.bitrix_leads (
        sql_ID,
        sql_ADDRESS,
        sql_ADDRESS_2,
        sql_ADDRESS_CITY,
        sql_ADDRESS_COUNTRY,
        sql_ADDRESS_COUNTRY_CODE,
        sql_ADDRESS_POSTAL_CODE,
        sql_ADDRESS_PROVINCE,
        sql_ADDRESS_REGION,
        sql_ASSIGNED_BY_ID,
        sql_BIRTHDATE,
        sql_COMMENTS,
        sql_COMPANY_ID,
        sql_COMPANY_TITLE,
        sql_CONTACT_ID,
        sql_CREATED_BY_ID,
        sql_CURRENCY_ID,
        sql_DATE_CLOSED,
        sql_DATE_CREATE,
        sql_DATE_MODIFY,
        sql_LAST_NAME,
        sql_MODIFY_BY_ID,
        sql_NAME,
        sql_OPENED,
        sql_OPPORTUNITY,
        sql_ORIGIN_ID,
        sql_ORIGINATOR_ID,
        sql_POST,
        sql_SECOND_NAME,
        sql_SOURCE_DESCRIPTION,
        sql_SOURCE_ID,
        sql_STATUS_DESCRIPTION,
        sql_STATUS_ID,
        sql_TITLE
)
SELECT
        s.sql_ID,
        s.sql_ADDRESS,
        s.sql_ADDRESS_2,
        s.sql_ADDRESS_CITY,
        s.sql_ADDRESS_COUNTRY,
        s.sql_ADDRESS_COUNTRY_CODE,
        s.sql_ADDRESS_POSTAL_CODE,
        s.sql_ADDRESS_PROVINCE,
        s.sql_ADDRESS_REGION,
        s.sql_ASSIGNED_BY_ID,
        CAST(s.sql_BIRTHDATE AS datetime),
        s.sql_COMMENTS,
        s.sql_COMPANY_ID,
        s.sql_COMPANY_TITLE,
        s.sql_CONTACT_ID,
        s.sql_CREATED_BY_ID,
        s.sql_CURRENCY_ID,
        CAST(s.sql_DATE_CLOSED AS datetime),
        CAST(s.sql_DATE_CREATE AS datetime),
        CAST(s.sql_DATE_MODIFY AS datetime),
        s.sql_LAST_NAME,
        s.sql_MODIFY_BY_ID,
        s.sql_NAME,
        s.sql_OPENED,
        s.sql_OPPORTUNITY,
        s.sql_ORIGIN_ID,
        s.sql_ORIGINATOR_ID,
        s.sql_POST,
        s.sql_SECOND_NAME,
        s.sql_SOURCE_DESCRIPTION,
        s.sql_SOURCE_ID,
        s.sql_STATUS_DESCRIPTION,
        s.sql_STATUS_ID,
        s.sql_TITLE
FROM #stage_leads AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.bitrix_leads AS t WITH (UPDLOCK, SERIALIZABLE)
    WHERE t.sql_ID = s.sql_ID
)
ORDER BY s.sql_ID;
SET @leads_inserted = @@ROWCOUNT;

-- 3. Contacts: the batch's leads get exactly the staged set. A staged value matches a stored
-- one by (sql_LEAD_ID, sql_CONTACT_ID); a value without a contact ID (never seen from
-- Bitrix24, but legal) matches by its whole content. Delete what Bitrix24 no longer has, and
-- the extra copies of a value that the original scripts may have left (keeping the lowest Id).
DELETE c
FROM dbo.bitrix_lead_contacts AS c
INNER JOIN #stage_leads AS l ON l.sql_ID = c.sql_LEAD_ID
WHERE NOT EXISTS (
        SELECT 1 FROM #stage_contacts AS s
        WHERE s.sql_LEAD_ID = c.sql_LEAD_ID
          AND (CAST(s.sql_CONTACT_ID AS varbinary(max)) = CAST(c.sql_CONTACT_ID AS varbinary(max))
               OR (s.sql_CONTACT_ID IS NULL AND c.sql_CONTACT_ID IS NULL
                   AND EXISTS (SELECT CAST(s.sql_TYPE_ID AS varbinary(max)), CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max))
                               INTERSECT
                               SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)))))
    )
   OR EXISTS (
        SELECT 1 FROM dbo.bitrix_lead_contacts AS d
        WHERE d.sql_LEAD_ID = c.sql_LEAD_ID
          AND d.Id < c.Id
          AND (CAST(d.sql_CONTACT_ID AS varbinary(max)) = CAST(c.sql_CONTACT_ID AS varbinary(max))
               OR (d.sql_CONTACT_ID IS NULL AND c.sql_CONTACT_ID IS NULL
                   AND EXISTS (SELECT CAST(d.sql_TYPE_ID AS varbinary(max)), CAST(d.sql_VALUE_TYPE AS varbinary(max)), CAST(d.sql_VALUE AS varbinary(max))
                               INTERSECT
                               SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)))))
    );
SET @contacts_deleted = @@ROWCOUNT;

-- Values whose type or text changed under the same contact ID: update in place.
UPDATE c SET
        c.sql_VALUE_TYPE = s.sql_VALUE_TYPE,
        c.sql_VALUE = s.sql_VALUE,
        c.sql_TYPE_ID = s.sql_TYPE_ID
FROM dbo.bitrix_lead_contacts AS c WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_contacts AS s
        ON s.sql_LEAD_ID = c.sql_LEAD_ID
       AND CAST(s.sql_CONTACT_ID AS varbinary(max)) = CAST(c.sql_CONTACT_ID AS varbinary(max))
WHERE NOT EXISTS (
    SELECT CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max)), CAST(c.sql_TYPE_ID AS varbinary(max))
    INTERSECT
    SELECT CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max)), CAST(s.sql_TYPE_ID AS varbinary(max))
);
SET @contacts_written = @@ROWCOUNT;

-- New values: insert in Bitrix24's order.
INSERT INTO dbo.bitrix_lead_contacts (sql_LEAD_ID, sql_CONTACT_ID, sql_VALUE_TYPE, sql_VALUE, sql_TYPE_ID)
SELECT s.sql_LEAD_ID, s.sql_CONTACT_ID, s.sql_VALUE_TYPE, s.sql_VALUE, s.sql_TYPE_ID
FROM #stage_contacts AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.bitrix_lead_contacts AS c WITH (UPDLOCK, SERIALIZABLE)
    WHERE c.sql_LEAD_ID = s.sql_LEAD_ID
      AND (CAST(c.sql_CONTACT_ID AS varbinary(max)) = CAST(s.sql_CONTACT_ID AS varbinary(max))
           OR (c.sql_CONTACT_ID IS NULL AND s.sql_CONTACT_ID IS NULL
               AND EXISTS (SELECT CAST(c.sql_TYPE_ID AS varbinary(max)), CAST(c.sql_VALUE_TYPE AS varbinary(max)), CAST(c.sql_VALUE AS varbinary(max))
                           INTERSECT
                           SELECT CAST(s.sql_TYPE_ID AS varbinary(max)), CAST(s.sql_VALUE_TYPE AS varbinary(max)), CAST(s.sql_VALUE AS varbinary(max)))))
)
ORDER BY s.seq;
SET @contacts_written = @contacts_written + @@ROWCOUNT;

-- 4. Solution: one row per lead that has one. Remove it (and extra copies) where the lead
-- has none now, update it where it changed, insert it where it is missing.
DELETE o
FROM dbo.bitrix_lead_solution AS o
INNER JOIN #stage_leads AS l ON l.sql_ID = o.sql_LEAD_ID
WHERE l.sql_solution IS NULL
   OR EXISTS (
        SELECT 1 FROM dbo.bitrix_lead_solution AS d
        WHERE d.sql_LEAD_ID = o.sql_LEAD_ID AND d.Id < o.Id
    );

UPDATE o SET o.sql_solution = l.sql_solution
FROM dbo.bitrix_lead_solution AS o WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_leads AS l ON l.sql_ID = o.sql_LEAD_ID
WHERE l.sql_solution IS NOT NULL
  AND (o.sql_solution IS NULL
       OR CAST(o.sql_solution AS varbinary(max)) <> CAST(l.sql_solution AS varbinary(max)));

INSERT INTO dbo.bitrix_lead_solution (sql_LEAD_ID, sql_solution)
SELECT l.sql_ID, l.sql_solution
FROM #stage_leads AS l
WHERE l.sql_solution IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM dbo.bitrix_lead_solution AS o WITH (UPDLOCK, SERIALIZABLE)
    WHERE o.sql_LEAD_ID = l.sql_ID
)
ORDER BY l.sql_ID;

-- 5. Error rows. For every lead of the batch (loaded leads, and rejected ones that have an
-- ID) the table ends up holding exactly its current problems: rows whose problem is gone are
-- deleted (so a lead that now loads cleanly loses them), as are extra copies; a problem still
-- there keeps its row and first-seen date (its lead JSON is refreshed); a new one is added.
-- A row is matched by (sql_ID, sql_error); rows without an ID also by their JSON, and are
-- never deleted, since no batch can say which lead they belonged to.
-- Every match on sql_ID says `=` first (sargable: a seek on IX_bitrix_import_lead_error_sql_ID,
-- migration 0007), then compares the bytes: `=` alone would ignore case and trailing spaces,
-- and the byte comparison alone cannot use the index.
DELETE e
FROM dbo.bitrix_import_lead_error AS e
WHERE e.sql_ID IN (SELECT CONVERT(nvarchar(20), l.sql_ID) FROM #stage_leads AS l
                   UNION
                   SELECT s.sql_ID FROM #stage_errors AS s WHERE s.sql_ID IS NOT NULL)
  AND (NOT EXISTS (
            SELECT 1 FROM #stage_errors AS s
            WHERE s.sql_ID = e.sql_ID
              AND CAST(s.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
              AND CAST(s.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
        )
       OR EXISTS (
            SELECT 1 FROM dbo.bitrix_import_lead_error AS d
            WHERE d.sql_ID = e.sql_ID
              AND CAST(d.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
              AND CAST(d.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
              AND d.Id < e.Id
        ));

UPDATE e SET e.sql_full_lead_info = s.sql_full_lead_info
FROM dbo.bitrix_import_lead_error AS e WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_errors AS s
        ON s.sql_ID = e.sql_ID
       AND CAST(s.sql_ID AS varbinary(max)) = CAST(e.sql_ID AS varbinary(max))
       AND CAST(s.sql_error AS varbinary(max)) = CAST(e.sql_error AS varbinary(max))
WHERE NOT EXISTS (
    SELECT CAST(CAST(e.sql_full_lead_info AS nvarchar(max)) AS varbinary(max))
    INTERSECT
    SELECT CAST(s.sql_full_lead_info AS varbinary(max))
);

INSERT INTO dbo.bitrix_import_lead_error (sql_ID, sql_error, sql_full_lead_info, sql_date_error)
SELECT s.sql_ID, s.sql_error, s.sql_full_lead_info, CAST(s.sql_date_error AS datetime)
FROM #stage_errors AS s
-- Two NOT EXISTS rather than one with an OR, so each is one seek: on the ID, or on NULL.
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.bitrix_import_lead_error AS e WITH (UPDLOCK, SERIALIZABLE)
    WHERE e.sql_ID = s.sql_ID
      AND CAST(e.sql_ID AS varbinary(max)) = CAST(s.sql_ID AS varbinary(max))
      AND CAST(e.sql_error AS varbinary(max)) = CAST(s.sql_error AS varbinary(max))
)
  AND NOT EXISTS (
    SELECT 1 FROM dbo.bitrix_import_lead_error AS e WITH (UPDLOCK, SERIALIZABLE)
    WHERE s.sql_ID IS NULL
      AND e.sql_ID IS NULL
      AND CAST(e.sql_error AS varbinary(max)) = CAST(s.sql_error AS varbinary(max))
      AND CAST(CAST(e.sql_full_lead_info AS nvarchar(max)) AS varbinary(max)) = CAST(s.sql_full_lead_info AS varbinary(max))
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
