-- Bring dbo.{{fingerprints_table}} in line with #stage_fingerprints (see stage_create.sql):
-- one staged row per record of the batch, its fingerprint, or NULL for a record written with
-- problems or not loaded (its stored fingerprint goes, so the next sync writes it again and
-- keeps its error row current). A template (src/load/mssql/entity_sql.rs). Sent inside the
-- batch's transaction (the loader opens it before upsert_batch.sql and commits after this),
-- so a fingerprint never says "written" for rows that were rolled back. Set-based, UPDATE
-- then guarded INSERT as in upsert_batch.sql (no MERGE, for the reasons given there); an
-- unchanged fingerprint is not touched.
SET NOCOUNT ON;
SET XACT_ABORT ON;

DELETE f
FROM dbo.{{fingerprints_table}} AS f
INNER JOIN #stage_fingerprints AS s ON s.{{fingerprint_key}} = f.{{fingerprint_key}}
WHERE s.fingerprint IS NULL;

UPDATE f SET f.fingerprint = s.fingerprint
FROM dbo.{{fingerprints_table}} AS f WITH (UPDLOCK, SERIALIZABLE)
INNER JOIN #stage_fingerprints AS s ON s.{{fingerprint_key}} = f.{{fingerprint_key}}
WHERE s.fingerprint IS NOT NULL
  AND f.fingerprint <> s.fingerprint;

INSERT INTO dbo.{{fingerprints_table}} ({{fingerprint_key}}, fingerprint)
SELECT s.{{fingerprint_key}}, s.fingerprint
FROM #stage_fingerprints AS s
WHERE s.fingerprint IS NOT NULL
  AND NOT EXISTS (
    SELECT 1 FROM dbo.{{fingerprints_table}} AS f WITH (UPDLOCK, SERIALIZABLE)
    WHERE f.{{fingerprint_key}} = s.{{fingerprint_key}}
)
ORDER BY s.{{fingerprint_key}};
