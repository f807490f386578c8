-- Every stored fingerprint, for a full sync to skip the records that did not change.
SELECT {{fingerprint_key}}, fingerprint FROM {{fingerprints_table}} ORDER BY {{fingerprint_key}};
