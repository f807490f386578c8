-- Every stored fingerprint of one entity (a template, see src/load/mssql/entity_sql.rs;
-- migrations 0009 and 0010), for a full sync to skip the records that did not change;
-- streamed, the table holds one row per record.
SELECT {{fingerprint_key}}, fingerprint FROM dbo.{{fingerprints_table}} ORDER BY {{fingerprint_key}};
