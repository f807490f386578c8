-- A staged lead's normalised phones are replaced like its contact values: delete the rows
-- that match no staged row exactly (a value removed or edited in Bitrix24, or normalised
-- differently after --phone-region changed), and repeats of one row (keeping the lowest Id).
DELETE FROM b24sync_lead_phones AS p
WHERE p.lead_id IN (SELECT sql_ID FROM temp.stage_leads)
  AND (
       NOT EXISTS (
           SELECT 1 FROM temp.stage_phones AS s
           WHERE s.lead_id = p.lead_id
             AND s.contact_id IS p.contact_id
             AND s.value IS p.value
             AND s.e164 IS p.e164
             AND s.extension IS p.extension
             AND s.digits_rev IS p.digits_rev
             AND s.normalisable IS p.normalisable
             AND s.reason IS p.reason)
    OR EXISTS (
           SELECT 1 FROM b24sync_lead_phones AS d
           WHERE d.lead_id = p.lead_id
             AND d.Id < p.Id
             AND d.contact_id IS p.contact_id
             AND d.value IS p.value
             AND d.e164 IS p.e164
             AND d.extension IS p.extension
             AND d.digits_rev IS p.digits_rev
             AND d.normalisable IS p.normalisable
             AND d.reason IS p.reason)
  );
