-- A lead of the batch written with problems, or not loaded (@1 lead ID): it has no
-- fingerprint, so the next sync writes it again and keeps its error row current.
DELETE FROM b24sync_lead_fingerprints WHERE lead_id = ?1;
