-- The caller lookup as b24sync runs it: @P1 the caller's E.164 number ('' when it does not
-- normalise), @P2 its last N digits ('' when not falling back), @P3 the most rows.
-- The same function a telephony system calls (migration 0006, docs/caller-lookup.md).
SELECT TOP (@P3)
    lead_id, title, name, last_name, company_title, status_id, date_modify,
    operator_id, operator_name, operator_last_name, operator_extension
FROM dbo.b24sync_lookup_caller_keys(@P1, @P2)
ORDER BY date_modify DESC, lead_id DESC;
