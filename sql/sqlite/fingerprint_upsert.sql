-- A record of the batch written without problems: its fingerprint (?1 record ID,
-- ?2 fingerprint), in the batch's transaction. An unchanged fingerprint is not touched.
INSERT INTO {{fingerprints_table}} ({{fingerprint_key}}, fingerprint) VALUES (?1, ?2)
ON CONFLICT ({{fingerprint_key}}) DO UPDATE SET fingerprint = excluded.fingerprint
WHERE fingerprint IS NOT excluded.fingerprint;
