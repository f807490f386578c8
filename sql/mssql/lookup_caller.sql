-- The caller lookup as b24sync runs it: @P1 the caller's E.164 number ('' when it does not
-- normalise), @P2 its last N digits ('' when not falling back), @P3 the most rows, @P4-@P6
-- the entity types wanted ('lead', 'contact', 'company'; one repeated to ask for fewer).
-- The same function a telephony system calls (migration 0012, docs/caller-lookup.md), in the
-- documented order: contacts and companies before leads, then the most recently modified,
-- then the higher ID.
SELECT TOP (@P3)
    entity_type,
    entity_id,
    priority,
    title,
    name,
    last_name,
    company_id,
    company_title,
    status_or_type,
    date_modify,
    operator_id,
    operator_name,
    operator_last_name,
    operator_extension,
    phone_value
FROM dbo.b24sync_lookup_caller_keys(@P1, @P2)
WHERE entity_type IN (@P4, @P5, @P6)
ORDER BY priority, date_modify DESC, entity_id DESC, entity_type;
