-- A run ends: complete its row (@P1 Id) with the outcome. No NULL parameter is ever sent
-- (tiberius sends None as the generic NULL type, which some T-SQL engines reject with
-- error 8009): an unknown exit code is @P12 = 0 (then @P13 is
-- ignored), no message is the empty string @P14.
SET NOCOUNT ON;
UPDATE dbo.b24sync_runs
SET finished_at = @P2,
    status = @P3,
    leads_read = @P4,
    leads_upserted = @P5,
    leads_deleted = @P6,
    contact_values = @P7,
    error_rows = @P8,
    requests = @P9,
    server_seconds = @P10,
    seconds = @P11,
    exit_code = CASE WHEN @P12 = 1 THEN @P13 END,
    message = NULLIF(@P14, N'')
WHERE Id = @P1;
SELECT @@ROWCOUNT AS runs_updated;
