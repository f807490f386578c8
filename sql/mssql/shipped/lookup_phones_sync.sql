-- Bring dbo.b24sync_lead_phones in line with #stage_phones for the leads of #stage_leads.
-- Sent inside the batch's transaction (the loader opens it before upsert_batch.sql and
-- commits after this), so the normalised phones change together with the contact values.
-- A stored row matches a staged one when every column is equal (NULL-safe, text compared as
-- binary, as in upsert_batch.sql): rows matching nothing staged go (a number removed or
-- edited in Bitrix24, or normalised differently after --phone-region changed), as do
-- repeats of one row; staged rows not stored yet are added. Unchanged rows are not touched.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DELETE p
FROM dbo.b24sync_lead_phones AS p
INNER JOIN #stage_leads AS l ON l.sql_ID = p.lead_id
WHERE NOT EXISTS (
        SELECT 1 FROM #stage_phones AS s
        WHERE s.lead_id = p.lead_id
          AND EXISTS (SELECT CAST(s.contact_id AS varbinary(max)), CAST(s.value AS varbinary(max)), s.e164, s.extension, s.digits_rev, s.normalisable, CAST(s.reason AS varbinary(max))
                      INTERSECT
                      SELECT CAST(p.contact_id AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, CAST(p.normalisable AS int), CAST(p.reason AS varbinary(max)))
    )
   OR EXISTS (
        SELECT 1 FROM dbo.b24sync_lead_phones AS d
        WHERE d.lead_id = p.lead_id
          AND d.Id < p.Id
          AND EXISTS (SELECT CAST(d.contact_id AS varbinary(max)), CAST(d.value AS varbinary(max)), d.e164, d.extension, d.digits_rev, d.normalisable, CAST(d.reason AS varbinary(max))
                      INTERSECT
                      SELECT CAST(p.contact_id AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, p.normalisable, CAST(p.reason AS varbinary(max)))
    );

INSERT INTO dbo.b24sync_lead_phones (lead_id, contact_id, value, e164, extension, digits_rev, normalisable, reason)
SELECT s.lead_id, s.contact_id, s.value, s.e164, s.extension, s.digits_rev, CAST(s.normalisable AS bit), s.reason
FROM #stage_phones AS s
WHERE NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_lead_phones AS p WITH (UPDLOCK, SERIALIZABLE)
    WHERE p.lead_id = s.lead_id
      AND EXISTS (SELECT CAST(s.contact_id AS varbinary(max)), CAST(s.value AS varbinary(max)), s.e164, s.extension, s.digits_rev, s.normalisable, CAST(s.reason AS varbinary(max))
                  INTERSECT
                  SELECT CAST(p.contact_id AS varbinary(max)), CAST(p.value AS varbinary(max)), p.e164, p.extension, p.digits_rev, CAST(p.normalisable AS int), CAST(p.reason AS varbinary(max)))
)
ORDER BY s.seq;
