-- Empty the staging tables (at the start of every batch, so a failed batch leaves no residue).
DELETE FROM temp.{{stage}};
DELETE FROM temp.{{stage_multi}};
DELETE FROM temp.stage_error_ids;
DELETE FROM temp.stage_errors;
