-- A record of the batch written with problems, or not loaded (?1 record ID): it has no
-- fingerprint, so the next sync writes it again and keeps its error row current.
DELETE FROM {{fingerprints_table}} WHERE {{fingerprint_key}} = ?1;
