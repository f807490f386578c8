-- Every stored fingerprint (migration 0009), for a full sync to skip the leads that did not
-- change; streamed, the table holds one row per lead.
SELECT lead_id, fingerprint FROM dbo.b24sync_lead_fingerprints ORDER BY lead_id;
