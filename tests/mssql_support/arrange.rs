//! Arrangements a DBA's server may refuse (statistics, users without logins, logins, grants,
//! column changes, ending sessions): some T-SQL engines do not support them, and a test
//! login may lack the rights. They live here, each failing as "could not arrange: ...", so
//! such a failure is never mistaken for a failure of b24sync itself.

use tiberius::Row;

use super::Raw;

/// Run `sql` to set up a test; panic with "could not arrange: `what`" if the server refuses.
pub async fn arrange(c: &mut Raw, what: &str, sql: &str) -> Vec<Vec<Row>> {
    let result = async { c.simple_query(sql).await?.into_results().await }.await;
    match result {
        Ok(sets) => sets,
        Err(e) => panic!(
            "could not arrange: {what} (the server refused it, so this test proves nothing \
             about b24sync here): {e}\n{sql}"
        ),
    }
}

/// Fresh statistics, so a plan test sees the optimizer's real choice.
pub async fn update_statistics(c: &mut Raw, table: &str) {
    arrange(
        c,
        &format!("UPDATE STATISTICS {table}"),
        &format!("UPDATE STATISTICS {table};"),
    )
    .await;
}

/// Widen or retype a column (`definition` as in ALTER COLUMN, e.g. `nvarchar(100) NULL`).
pub async fn alter_column(c: &mut Raw, table: &str, column: &str, definition: &str) {
    arrange(
        c,
        &format!("ALTER TABLE {table} ALTER COLUMN {column} {definition}"),
        &format!("ALTER TABLE {table} ALTER COLUMN {column} {definition};"),
    )
    .await;
}

/// A database user without a login, granted `grants` (e.g. `SELECT, INSERT ON SCHEMA::dbo`),
/// for `EXECUTE AS USER`.
pub async fn user_without_login(c: &mut Raw, user: &str, grants: &str) {
    arrange(
        c,
        &format!("CREATE USER {user} WITHOUT LOGIN with GRANT {grants}"),
        &format!("CREATE USER {user} WITHOUT LOGIN;\nGRANT {grants} TO {user};"),
    )
    .await;
}

/// A server login (run on master) with a user in `database` granted `grants`. Connect as it
/// with [`super::as_login`]; drop it with [`drop_login`].
pub async fn login_with_grants(
    master: &mut Raw,
    database: &str,
    login: &str,
    password: &str,
    grants: &str,
) {
    arrange(
        master,
        &format!("CREATE LOGIN {login}"),
        &format!("CREATE LOGIN {login} WITH PASSWORD = N'{password}', CHECK_POLICY = OFF;"),
    )
    .await;
    arrange(
        master,
        &format!("CREATE USER {login} in {database} with GRANT {grants}"),
        &format!(
            "EXEC (N'USE [{database}]; CREATE USER {login} FOR LOGIN {login}; GRANT {grants} TO {login};');"
        ),
    )
    .await;
}

/// Remove a login made by [`login_with_grants`] (after its database is gone); best effort.
pub async fn drop_login(master: &mut Raw, login: &str) {
    let sql = format!(
        "IF SUSER_ID(N'{login}') IS NOT NULL BEGIN \
           DECLARE @s nvarchar(max) = N''; \
           SELECT @s = @s + N'KILL ' + CAST(session_id AS nvarchar(10)) + N'; ' FROM sys.dm_exec_sessions WHERE login_name = N'{login}'; \
           EXEC (@s); DROP LOGIN {login}; END;"
    );
    if let Err(e) = async { master.simple_query(&sql).await?.into_results().await }.await {
        eprintln!("could not drop test login {login}: {e}; drop it by hand");
    }
}

/// End a server session (needs ALTER ANY CONNECTION), as a DBA's KILL or a dropped network
/// connection would.
/// Returns once the server no longer lists the session (its locks are released then).
pub async fn kill_session(c: &mut Raw, spid: i32) {
    arrange(c, &format!("KILL {spid}"), &format!("KILL {spid};")).await;
    let gone = format!("SELECT COUNT(*) FROM sys.dm_exec_sessions WHERE session_id = {spid};");
    for _ in 0..100 {
        let sets = arrange(
            c,
            "watching the killed session end (sys.dm_exec_sessions)",
            &gone,
        )
        .await;
        let left = sets
            .iter()
            .flatten()
            .next()
            .and_then(|r| r.get::<i32, _>(0))
            .unwrap_or(0);
        if left == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("could not arrange: session {spid} was still there 10 s after KILL");
}
