-- The Oktell scenarios read the single row Id = 1.
INSERT INTO bitrix_lead_runtime (Id, lead_get_by_id_dt, lead_list_dt) VALUES (1, ?1, ?1)
ON CONFLICT (Id) DO UPDATE SET
    lead_get_by_id_dt = excluded.lead_get_by_id_dt,
    lead_list_dt = excluded.lead_list_dt;
