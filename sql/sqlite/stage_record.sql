-- One staged record: its ID, its fields' cells in the entity's order, and (the lead's)
-- bitrix_lead_solution value.
INSERT INTO temp.{{stage}} (
    sql_ID,
{{columns}},
    sql_solution
) VALUES ({{placeholders}});
