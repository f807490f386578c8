-- Empty the staging tables (at the start of every batch, so a failed batch leaves no residue).
DELETE FROM temp.stage_leads;
DELETE FROM temp.stage_contacts;
DELETE FROM temp.stage_error_ids;
DELETE FROM temp.stage_errors;
