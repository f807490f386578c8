-- Bring dbo.{{phones_table}} in line with #stage_phones for the records of {{stage}}.
-- A template: src/load/mssql/entity_sql.rs fills in the entity's names. #stage_phones
-- (lookup_stage_create.sql) is the same for every entity: its lead_id is the record's ID and
-- its contact_id the value's Bitrix24 ID, whatever the entity's own columns are called.
-- Sent inside the batch's transaction (the loader opens it before upsert_batch.sql and
-- commits after this), so the normalised phones change together with the multi-field values.
-- A stored row matches a staged one when every column is equal (NULL-safe, text compared as
-- binary, as in upsert_batch.sql): rows matching nothing staged go (a number removed or
-- edited in Bitrix24, or normalised differently after --phone-region changed), as do
-- repeats of one row; staged rows not stored yet are added. Unchanged rows are not touched.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DELETE p
FROM dbo.{{phones_table}} AS p
INNER JOIN {{stage}} AS l ON l.sql_ID = p.{{phones_owner}}
WHERE NOT EXISTS (
        SELECT 1 FROM #stage_phones AS s
        WHERE s.lead_id = p.{{phones_owner}}
          AND EXISTS (SELECT CAST(s.contact_id AS varbinary(max)), CAST(s.value AS varbinary(max)), s.e164, s.extension, s.digits_rev, s.normalisable, CAST(s.reason AS varbinary(max))
                      INTERSECT
                      SELECT CAST(p.{{phones_value_id}} AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, CAST(p.normalisable AS int), CAST(p.reason AS varbinary(max)))
    )
   OR EXISTS (
        SELECT 1 FROM dbo.{{phones_table}} AS d
        WHERE d.{{phones_owner}} = p.{{phones_owner}}
          AND d.Id < p.Id
          AND EXISTS (SELECT CAST(d.{{phones_value_id}} AS varbinary(max)), CAST(d.value AS varbinary(max)), d.e164, d.extension, d.digits_rev, d.normalisable, CAST(d.reason AS varbinary(max))
                      INTERSECT
                      SELECT CAST(p.{{phones_value_id}} AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, p.normalisable, CAST(p.reason AS varbinary(max)))
    );

INSERT INTO dbo.{{phones_table}} ({{phones_owner}}, {{phones_value_id}}, value, e164, extension, digits_rev, normalisable, reason)
SELECT s.lead_id, s.contact_id, s.value, s.e164, s.extension, s.digits_rev, CAST(s.normalisable AS bit), s.reason
FROM #stage_phones AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.{{phones_table}} AS p WITH (UPDLOCK, SERIALIZABLE)
    WHERE p.{{phones_owner}} = s.lead_id
      AND EXISTS (SELECT CAST(s.contact_id AS varbinary(max)), CAST(s.value AS varbinary(max)), s.e164, s.extension, s.digits_rev, s.normalisable, CAST(s.reason AS varbinary(max))
                  INTERSECT
                  SELECT CAST(p.{{phones_value_id}} AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, CAST(p.normalisable AS int), CAST(p.reason AS varbinary(max)))
)
ORDER BY s.seq;
