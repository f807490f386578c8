-- The caller lookup (docs/caller-lookup.md): ?1 the caller's E.164 number ('' when it does
-- not normalise); ?2, ?3 the range of reversed digits for the "last N digits" fallback
-- (?2 = the caller's last N digits reversed, ?3 = ?2 || ':', the next string after every
-- digit string starting with ?2; both '' when not falling back, an empty range); ?4 the
-- most rows. Each OR branch is an index seek (b24sync_lead_phones' e164 or digits_rev
-- index), then bitrix_leads by its unique sql_ID and the operator by user_id.
SELECT DISTINCT
    lead_id, title, name, last_name, company_title, status_id, date_modify,
    operator_id, operator_name, operator_last_name, operator_extension
FROM b24sync_caller_phones
WHERE e164 = ?1
   OR (digits_rev >= ?2 AND digits_rev < ?3)
ORDER BY date_modify DESC, lead_id DESC
LIMIT ?4;
