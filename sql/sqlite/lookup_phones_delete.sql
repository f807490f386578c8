-- A staged record's normalised phones are replaced like its contact values: delete the rows
-- that match no staged row exactly (a value removed or edited in Bitrix24, or normalised
-- differently after --phone-region changed), and repeats of one row (keeping the lowest Id).
DELETE FROM {{phones_table}} AS p
WHERE p.{{phones_owner}} IN (SELECT sql_ID FROM temp.{{stage}})
  AND (
       NOT EXISTS (
           SELECT 1 FROM temp.stage_phones AS s
           WHERE s.owner_id = p.{{phones_owner}}
             AND s.value_id IS p.{{phones_value_id}}
             AND s.value IS p.value
             AND s.e164 IS p.e164
             AND s.extension IS p.extension
             AND s.digits_rev IS p.digits_rev
             AND s.normalisable IS p.normalisable
             AND s.reason IS p.reason)
    OR EXISTS (
           SELECT 1 FROM {{phones_table}} AS d
           WHERE d.{{phones_owner}} = p.{{phones_owner}}
             AND d.Id < p.Id
             AND d.{{phones_value_id}} IS p.{{phones_value_id}}
             AND d.value IS p.value
             AND d.e164 IS p.e164
             AND d.extension IS p.extension
             AND d.digits_rev IS p.digits_rev
             AND d.normalisable IS p.normalisable
             AND d.reason IS p.reason)
  );
