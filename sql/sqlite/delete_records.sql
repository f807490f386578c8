-- The records themselves, after their dependents (delete_dependents.sql).
DELETE FROM {{table}} WHERE sql_ID IN (SELECT sql_ID FROM stage_delete_ids);
