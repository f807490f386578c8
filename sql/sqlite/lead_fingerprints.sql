-- Every stored fingerprint, for a full sync to skip the leads that did not change.
SELECT lead_id, fingerprint FROM b24sync_lead_fingerprints ORDER BY lead_id;
