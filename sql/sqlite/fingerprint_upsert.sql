-- A lead of the batch written without problems: its fingerprint (@1 lead ID, @2 fingerprint),
-- in the batch's transaction. An unchanged fingerprint is not touched.
INSERT INTO b24sync_lead_fingerprints (lead_id, fingerprint) VALUES (?1, ?2)
ON CONFLICT (lead_id) DO UPDATE SET fingerprint = excluded.fingerprint
WHERE fingerprint IS NOT excluded.fingerprint;
