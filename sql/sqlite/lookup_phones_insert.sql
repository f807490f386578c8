-- Staged phones not stored yet (same matching as lookup_phones_delete.sql); unchanged rows
-- are not touched, so a re-run changes nothing.
INSERT INTO {{phones_table}} ({{phones_owner}}, {{phones_value_id}}, value, e164, extension, digits_rev, normalisable, reason)
SELECT s.owner_id, s.value_id, s.value, s.e164, s.extension, s.digits_rev, s.normalisable, s.reason
FROM temp.stage_phones AS s
WHERE NOT EXISTS (
    SELECT 1 FROM {{phones_table}} AS p
    WHERE p.{{phones_owner}} = s.owner_id
      AND p.{{phones_value_id}} IS s.value_id
      AND p.value IS s.value
      AND p.e164 IS s.e164
      AND p.extension IS s.extension
      AND p.digits_rev IS s.digits_rev
      AND p.normalisable IS s.normalisable
      AND p.reason IS s.reason)
ORDER BY s.rowid;
