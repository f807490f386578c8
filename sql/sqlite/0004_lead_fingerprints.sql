-- Migration 4: the leads' content fingerprints (src/prepare/fingerprint.rs), the project's own
-- table next to the Oktell tables, which stay exactly as they are. One row per lead written
-- without problems: a 64-bit hash of the rows written for it (bitrix_leads, its contact
-- values, its normalised phones, its solution), stored in the same transaction as those
-- rows. A full sync skips a lead whose fingerprint did not change; `sync --full --verify`
-- ignores the stored fingerprints (after a manual edit or a restore of the Oktell tables).
-- lead_id is the rowid, so the whole table reads in key order without an index.
CREATE TABLE IF NOT EXISTS b24sync_lead_fingerprints (
    lead_id INTEGER NOT NULL PRIMARY KEY,
    fingerprint BIGINT NOT NULL
);
