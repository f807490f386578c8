-- Bring dbo.b24sync_lead_fingerprints in line with #stage_fingerprints (see stage_create.sql):
-- one staged row per lead of the batch, its fingerprint, or NULL for a lead written with
-- problems or not loaded (its stored fingerprint goes, so the next sync writes it again and
-- keeps its error row current). Sent inside the batch's transaction (the loader opens it
-- before upsert_batch.sql and commits after this), so a fingerprint never says "written" for
-- rows that were rolled back. Set-based, UPDATE then guarded INSERT as in upsert_batch.sql
-- (no MERGE, for the reasons given there); an unchanged fingerprint is not touched.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DELETE f
FROM dbo.b24sync_lead_fingerprints AS f
INNER JOIN #stage_fingerprints AS s ON s.lead_id = f.lead_id
WHERE s.fingerprint IS NULL;

UPDATE f SET f.fingerprint = s.fingerprint
FROM dbo.b24sync_lead_fingerprints AS f WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_fingerprints AS s ON s.lead_id = f.lead_id
WHERE s.fingerprint IS NOT NULL
  AND f.fingerprint <> s.fingerprint;

INSERT INTO dbo.b24sync_lead_fingerprints (lead_id, fingerprint)
SELECT s.lead_id, s.fingerprint
FROM #stage_fingerprints AS s
WHERE s.fingerprint IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM dbo.b24sync_lead_fingerprints AS f WITH (UPDLOCK, SERIALIZABLE)
    WHERE f.lead_id = s.lead_id
)
ORDER BY s.lead_id;
