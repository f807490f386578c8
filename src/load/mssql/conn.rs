//! SQL Server connection strings and connection errors, without ever showing a password.
//! Opening the connections themselves is `connect.rs`.
//!
//! Strings are parsed with the `connection-string` crate, the parser tiberius itself uses,
//! so what we show (`host:port/database`, the login) is what tiberius connects to.

use std::fmt;

use connection_string::{AdoNetString, JdbcString};
use tiberius::{Config, EncryptionLevel};

use crate::store::StoreError;

use super::connect::ConnectError;

/// Does `s` look like a SQL Server connection string rather than a SQLite file path?
///
/// True for a `jdbc:sqlserver://` URL, or an ADO.NET string with a `Server=` or
/// `Data Source=` key (keys are case-insensitive, as ADO.NET treats them).
pub fn is_connection_string(s: &str) -> bool {
    let s = s.trim();
    if s.len() >= JDBC_PREFIX.len() && s[..JDBC_PREFIX.len()].eq_ignore_ascii_case(JDBC_PREFIX) {
        return true;
    }
    s.split(';').any(|part| {
        part.split_once('=').is_some_and(|(key, _)| {
            let key = key.trim().to_ascii_lowercase();
            key == "server" || key == "data source"
        })
    })
}

const JDBC_PREFIX: &str = "jdbc:sqlserver://";

/// Where a sink connects, for messages. Holds the password only to scrub it from error
/// texts; `Debug` and `describe` never show it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub host: String,
    pub port: u16,
    pub database: Option<String>,
    pub user: Option<String>,
    password: Option<String>,
    /// `TrustServerCertificate=true`: TLS without checking the certificate.
    pub trusts_cert: bool,
    /// `Encrypt=DANGER_PLAINTEXT`: no TLS at all, not even for the login.
    pub plaintext: bool,
    /// `Encrypt=false` (or `no`, `Optional`): TLS for the login only, the data in plain text.
    pub login_only: bool,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("trusts_cert", &self.trusts_cert)
            .field("plaintext", &self.plaintext)
            .field("login_only", &self.login_only)
            .finish()
    }
}

impl Target {
    /// `host:port/database`, the name the sink gives itself in messages.
    pub fn describe(&self) -> String {
        let db = self
            .database
            .as_deref()
            .unwrap_or("(login's default database)");
        format!("{}:{}/{}", self.host, self.port, db)
    }

    /// Make a message safe to show: one line, and no password in it even if some lower
    /// layer echoed the connection string back.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.replace(['\r', '\n'], " ");
        if let Some(pw) = self.password.as_deref().filter(|p| !p.is_empty()) {
            out = out.replace(pw, "********");
        }
        out.trim().to_string()
    }

    pub fn unreachable(&self, reason: &str) -> StoreError {
        StoreError::Unreachable {
            target: self.describe(),
            reason: self.scrub(reason),
        }
    }
}

/// Parse an ADO.NET (`Server=tcp:host,1433;Database=oktell;User Id=...`) or JDBC
/// (`jdbc:sqlserver://host:1433;databaseName=oktell;user=...`) string into a tiberius
/// `Config` and the [`Target`] it names.
///
/// Encryption: on (`Required`) unless the string says otherwise. tiberius's own default for an
/// ADO string without `Encrypt` is to encrypt the login only; DBAs expect the modern
/// drivers' default (Microsoft.Data.SqlClient 4+ encrypts by default). A self-signed
/// certificate is trusted only when the string says `TrustServerCertificate=true`.
pub(crate) fn parse(s: &str) -> Result<(Config, Target), StoreError> {
    let s = s.trim();
    let jdbc =
        s.len() >= JDBC_PREFIX.len() && s[..JDBC_PREFIX.len()].eq_ignore_ascii_case(JDBC_PREFIX);
    // The parsers' messages are fixed texts ("Invalid property key"), never the input, so
    // they are safe to show.
    let invalid = |why: &dyn fmt::Display| StoreError::Unreachable {
        target: "(unparsed connection string)".to_string(),
        reason: format!("not a valid SQL Server connection string: {why}"),
    };
    let (dict, host, port, instance) = if jdbc {
        let j: JdbcString = s.parse().map_err(|e| invalid(&e))?;
        (
            j.properties().clone(),
            j.server_name().map(str::to_string),
            j.port(),
            j.instance_name().map(str::to_string),
        )
    } else {
        let a: AdoNetString = s.parse().map_err(|e| invalid(&e))?;
        let dict: std::collections::HashMap<String, String> =
            a.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let (host, port, instance) = ado_server(&dict).map_err(|e| invalid(&e))?;
        (dict, host, port, instance)
    };
    let get = |keys: &[&str]| keys.iter().find_map(|k| dict.get(*k)).cloned();
    let user = get(&["uid", "username", "user", "user id"]);
    let password = get(&["password", "pwd"]);
    let database = get(&["database", "initial catalog", "databasename"]).filter(|d| !d.is_empty());
    let host = host
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());

    let yes = |v: &str| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "yes");
    let target = Target {
        host: host.clone(),
        port: port.unwrap_or(1433),
        database,
        user,
        password,
        trusts_cert: get(&["trustservercertificate"]).is_some_and(|v| yes(&v)),
        plaintext: get(&["encrypt"])
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("danger_plaintext")),
        login_only: get(&["encrypt"]).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "false" | "no" | "optional"
            )
        }),
    };

    if instance.is_some() && port.is_none() {
        // Finding a named instance's port needs the SQL Browser service (UDP 1434), which
        // this build does not query; a wrong guess would fail far less clearly.
        return Err(target.unreachable(
            "a named instance needs its TCP port in the string (Server=tcp:host\\INSTANCE,PORT): \
             SQL Browser look-ups are not supported",
        ));
    }
    if get(&[
        "integratedsecurity",
        "integrated security",
        "trusted_connection",
    ])
    .is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        v == "true" || v == "yes" || v == "sspi"
    }) {
        return Err(target.unreachable(
            "Windows (integrated) authentication is not supported by this build on Linux; \
             use a SQL Server login (User Id=...;Password=...)",
        ));
    }

    // Newer drivers accept Encrypt=Mandatory/Optional/Strict; tiberius only true/false.
    let encrypt = get(&["encrypt"]).map(|v| v.trim().to_ascii_lowercase());
    let level = match encrypt.as_deref() {
        None => Some(EncryptionLevel::Required),
        Some("mandatory") | Some("strict") => Some(EncryptionLevel::Required),
        Some("optional") => Some(EncryptionLevel::Off),
        Some(_) => None, // tiberius reads true/false/yes/no/DANGER_PLAINTEXT itself
    };
    let parsed = if level.is_some() && encrypt.is_some() {
        // Drop the keyword tiberius would reject, then set the level ourselves.
        let rebuilt = rebuild_without_encrypt(s, jdbc).map_err(|e| invalid(&e))?;
        if jdbc {
            Config::from_jdbc_string(&rebuilt)
        } else {
            Config::from_ado_string(&rebuilt)
        }
    } else if jdbc {
        Config::from_jdbc_string(s)
    } else {
        Config::from_ado_string(s)
    };
    let mut config = parsed.map_err(|e| {
        target.unreachable(&format!("not a valid SQL Server connection string: {e}"))
    })?;
    if let Some(level) = level {
        config.encryption(level);
    }
    if get(&["application name", "applicationname"]).is_none() {
        // Shows up in sys.dm_exec_sessions, so a DBA can tell whose session this is.
        config.application_name("b24sync");
    }
    Ok((config, target))
}

fn rebuild_without_encrypt(s: &str, jdbc: bool) -> Result<String, connection_string::Error> {
    if jdbc {
        let mut j: JdbcString = s.parse()?;
        j.properties_mut().remove("encrypt");
        Ok(j.to_string())
    } else {
        let mut a: AdoNetString = s.parse()?;
        a.remove("encrypt");
        Ok(a.to_string())
    }
}

type Server = (Option<String>, Option<u16>, Option<String>);

/// `Server=tcp:host,port` / `host\instance,port` / `(local)`, as tiberius reads it.
fn ado_server(dict: &std::collections::HashMap<String, String>) -> Result<Server, String> {
    let Some(value) = dict.get("server").or_else(|| dict.get("data source")) else {
        return Ok((None, None, None));
    };
    let value = value.trim();
    let value = value.strip_prefix("tcp:").unwrap_or(value);
    let mut parts = value.split(',');
    let host_part = parts.next().unwrap_or_default().trim();
    let port = match parts.next() {
        Some(p) => Some(
            p.trim()
                .parse::<u16>()
                .map_err(|_| "the port after ',' in Server= is not a number".to_string())?,
        ),
        None => None,
    };
    if parts.next().is_some() {
        return Err("Server= has more than one ','".to_string());
    }
    let (host, instance) = match host_part.split_once('\\') {
        Some((h, i)) => (h, Some(i.to_string())),
        None => (host_part, None),
    };
    Ok((Some(host.replace("(local)", "localhost")), port, instance))
}

/// A connection-level failure, reduced to what decides its message (tiberius's own error
/// type cannot be built outside tiberius, so the mapping is tested on this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Server {
        code: u32,
        message: String,
    },
    Io(String),
    Tls(String),
    Other(String),
    /// No TCP connection (refused, unreachable, name not resolved, timed out).
    Tcp(String),
    /// TCP connected, but the TLS handshake and login did not finish within this many seconds.
    LoginTimeout(u64),
    /// TCP connected, then the TLS handshake or login broke off (not a server error).
    Handshake(String),
}

impl Failure {
    pub fn from_tiberius(e: &tiberius::error::Error) -> Self {
        use tiberius::error::Error as E;
        match e {
            E::Server(t) => Failure::Server {
                code: t.code(),
                message: t.message().to_string(),
            },
            E::Io { message, .. } => Failure::Io(message.clone()),
            E::Tls(m) => Failure::Tls(m.clone()),
            other => Failure::Other(other.to_string()),
        }
    }

    pub fn from_connect(e: &ConnectError) -> Self {
        use tiberius::error::Error as E;
        match e {
            ConnectError::Tcp(m) => Failure::Tcp(m.clone()),
            ConnectError::LoginTimeout(secs) => Failure::LoginTimeout(*secs),
            // The server answered and refused (a login, a database), or TLS said why.
            ConnectError::Login(t @ (E::Server(_) | E::Tls(_))) => Self::from_tiberius(t),
            ConnectError::Login(other) => Failure::Handshake(other.to_string()),
        }
    }

    /// One line for a DBA: what went wrong and, where it is clear, what to do.
    pub fn reason(&self, target: &Target) -> String {
        let text = match self {
            Failure::Server { code: 18456, .. } => {
                format!("login failed for user '{}'", target.user.as_deref().unwrap_or(""))
            }
            Failure::Server { code: 4060, .. } => format!(
                "cannot open database '{}': it does not exist or the login '{}' has no access to it",
                target.database.as_deref().unwrap_or(""),
                target.user.as_deref().unwrap_or("")
            ),
            Failure::Server { code, message } => format!("server error {code}: {message}"),
            Failure::Io(m) => m.clone(),
            Failure::Tls(m) if m.contains("certificate") || m.contains("Certificate") || m.contains("UnknownIssuer") => {
                format!(
                    "TLS: {m} (a self-signed server certificate is trusted only with \
                     TrustServerCertificate=true in the connection string)"
                )
            }
            Failure::Tls(m) => format!("TLS: {m}. {}", tls_advice(target)),
            Failure::Other(m) => m.clone(),
            Failure::Tcp(m) => format!(
                "no TCP connection to {}:{}: {m} (is the server running, and port {} open?)",
                target.host, target.port, target.port
            ),
            Failure::LoginTimeout(secs) => format!(
                "the server accepted the TCP connection, but the TLS handshake and login did not \
                 complete within {secs} s. {}",
                tls_advice(target)
            ),
            Failure::Handshake(m) => format!(
                "the server accepted the TCP connection, but the TLS handshake or login failed ({m}). {}",
                tls_advice(target)
            ),
        };
        target.scrub(&text)
    }
}

/// What to check when TCP works but the TLS handshake or login does not.
fn tls_advice(target: &Target) -> String {
    if target.plaintext {
        "The string asks for no encryption (Encrypt=DANGER_PLAINTEXT): is this a SQL Server \
         (TDS) port, and does the server allow unencrypted logins?"
            .to_string()
    } else {
        "b24sync encrypts the connection (Encrypt=true unless the string says otherwise), so the \
         server must offer TLS: SQL Server always does (self-signed unless configured: add \
         TrustServerCertificate=true); a compatible engine may need TLS turned on. If it cannot \
         offer TLS and the network is trusted, Encrypt=DANGER_PLAINTEXT connects without any \
         encryption. Also check that this port is SQL Server's (TDS) port"
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADO: &str =
        "Server=tcp:db.example.local,1433;Database=oktell;User Id=b24;Password=S3cr3t!pw;\
                       Encrypt=true;TrustServerCertificate=true";

    #[test]
    fn tells_connection_strings_from_file_paths() {
        assert!(is_connection_string(ADO));
        assert!(is_connection_string(
            "Data Source=sql01;Initial Catalog=oktell;User ID=x;Password=y"
        ));
        assert!(is_connection_string(
            "  server = tcp:sql01,1433 ; database=oktell"
        ));
        assert!(is_connection_string(
            "jdbc:sqlserver://sql01:1433;databaseName=oktell"
        ));
        assert!(is_connection_string("JDBC:SQLServer://sql01"));
        assert!(!is_connection_string("/var/lib/b24sync/oktell.db"));
        assert!(!is_connection_string("oktell.sqlite"));
        assert!(!is_connection_string("C:\\data\\oktell.db"));
        assert!(!is_connection_string("file:oktell.db?mode=rwc"));
        assert!(!is_connection_string("Database=oktell;User Id=x"));
    }

    #[test]
    fn ado_string_as_dbas_write_it() {
        let (config, target) = parse(ADO).expect("parses");
        assert_eq!(config.get_addr(), "db.example.local:1433");
        assert_eq!(target.describe(), "db.example.local:1433/oktell");
        assert_eq!(target.user.as_deref(), Some("b24"));
    }

    #[test]
    fn ado_defaults_port_and_understands_data_source_and_local() {
        let (config, target) =
            parse("Data Source=(local);Initial Catalog=oktell;User ID=sa;Password=pw")
                .expect("parses");
        assert_eq!(config.get_addr(), "localhost:1433");
        assert_eq!(target.describe(), "localhost:1433/oktell");
        let (_, target) = parse("Server=sql01,14330;User Id=sa;Password=pw").expect("parses");
        assert_eq!(target.describe(), "sql01:14330/(login's default database)");
    }

    #[test]
    fn jdbc_string_is_accepted() {
        let (config, target) =
            parse("jdbc:sqlserver://sql01.corp:1444;databaseName=oktell;user=b24;password=S3cr3t!pw;trustServerCertificate=true")
                .expect("parses");
        assert_eq!(config.get_addr(), "sql01.corp:1444");
        assert_eq!(target.describe(), "sql01.corp:1444/oktell");
        assert_eq!(target.user.as_deref(), Some("b24"));
    }

    #[test]
    fn newer_encrypt_keywords_are_accepted() {
        for value in ["Mandatory", "Strict", "Optional", "false", "yes"] {
            let s = format!("Server=sql01;Database=oktell;User Id=x;Password=y;Encrypt={value}");
            assert!(parse(&s).is_ok(), "Encrypt={value}");
        }
    }

    #[test]
    fn named_instance_without_port_and_windows_auth_are_explained() {
        let err = parse("Server=sql01\\OKTELL;Database=oktell;User Id=x;Password=pw").unwrap_err();
        assert!(err.to_string().contains("named instance"), "{err}");
        let err = parse("Server=sql01,1433;Database=oktell;Integrated Security=SSPI").unwrap_err();
        assert!(err.to_string().contains("Windows"), "{err}");
        let (config, _) = parse("Server=sql01\\OKTELL,50123;Database=oktell;User Id=x;Password=pw")
            .expect("parses");
        assert_eq!(config.get_addr(), "sql01:50123");
    }

    #[test]
    fn nothing_shown_contains_the_password() {
        for s in [
            ADO,
            "jdbc:sqlserver://sql01:1433;databaseName=oktell;user=b24;password=S3cr3t!pw",
            "Server=sql01;Database=oktell;User Id=b24;Pwd=S3cr3t!pw",
        ] {
            let (config, target) = parse(s).expect("parses");
            assert!(!target.describe().contains("S3cr3t"));
            assert!(!format!("{target:?}").contains("S3cr3t"));
            assert!(
                !format!("{config:?}").contains("S3cr3t"),
                "tiberius hides it in Debug too"
            );
        }
        // A malformed string: the parser's message is a fixed text, never the input.
        let err = parse("Server=sql01;Password={S3cr3t!pw").unwrap_err();
        assert!(!err.to_string().contains("S3cr3t"), "{err}");
    }

    #[test]
    fn refused_login_is_one_line_naming_host_and_user_not_password() {
        let (_, target) = parse(ADO).expect("parses");
        let failure = Failure::Server {
            code: 18456,
            message: "Login failed for user 'b24'.".to_string(),
        };
        let err = target.unreachable(&failure.reason(&target));
        let text = err.to_string();
        assert_eq!(
            text,
            "cannot open the database db.example.local:1433/oktell: login failed for user 'b24'"
        );
        assert!(!text.contains("S3cr3t") && !text.contains('\n'));
        // Even a lower layer that echoed the password gets scrubbed.
        let echoed = Failure::Other("bad things near Password=S3cr3t!pw\nsecond line".to_string());
        let text = target.unreachable(&echoed.reason(&target)).to_string();
        assert!(!text.contains("S3cr3t") && !text.contains('\n'), "{text}");
    }

    #[test]
    fn other_failures_say_what_to_do() {
        let (_, target) = parse(ADO).expect("parses");
        let refused = Failure::Io("Connection refused (os error 111)".to_string());
        assert_eq!(refused.reason(&target), "Connection refused (os error 111)");
        let db = Failure::Server {
            code: 4060,
            message: "Cannot open database".to_string(),
        };
        assert!(db.reason(&target).contains("cannot open database 'oktell'"));
        let tls = Failure::Tls("invalid peer certificate: UnknownIssuer".to_string());
        assert!(tls.reason(&target).contains("TrustServerCertificate=true"));
    }

    #[test]
    fn trust_and_plaintext_are_read_from_the_string() {
        let string = |port: u16, extra: &str| {
            format!("Server=tcp:127.0.0.1,{port};Database=oktell;User Id=b24;Password=Very$ecret42;{extra}")
        };
        let (_, t) = parse(&string(1433, "TrustServerCertificate=true")).expect("parses");
        assert!(t.trusts_cert && !t.plaintext);
        let (_, t) = parse(&string(1433, "Encrypt=DANGER_PLAINTEXT")).expect("parses");
        assert!(t.plaintext && !t.trusts_cert);
        let (_, t) = parse(&string(1433, "")).expect("parses");
        assert!(!t.plaintext && !t.trusts_cert && !t.login_only);
        for v in ["false", "Optional", "no"] {
            let (_, t) = parse(&string(1433, &format!("Encrypt={v}"))).expect("parses");
            assert!(t.login_only && !t.plaintext, "Encrypt={v}");
        }
        // The advice for a plaintext string does not tell it to turn off encryption again.
        let (_, t) = parse(&string(1433, "Encrypt=DANGER_PLAINTEXT")).expect("parses");
        let text = Failure::LoginTimeout(3).reason(&t);
        assert!(text.contains("asks for no encryption"), "{text}");
    }
}
