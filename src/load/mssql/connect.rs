//! Opening tiberius connections for the pool and the dedicated sessions (run lock, OAuth
//! refresh lock), in two phases that each have a timeout and say which one failed.

use std::time::Duration;

use tiberius::Config;
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;
use tracing::instrument::WithSubscriber;

use super::Client;

/// Why opening a connection failed, by phase (see [`Manager`]).
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// No TCP connection: refused, unreachable, name not resolved, or timed out.
    Tcp(String),
    /// TCP connected, but TLS and login did not complete in time (seconds).
    LoginTimeout(u64),
    /// TCP connected, then TLS or the login failed.
    Login(tiberius::error::Error),
}

/// Opens tiberius connections in two phases, each with its own timeout, so a server that
/// answers but cannot finish TLS or the login is not reported as "not running": first the
/// TCP connection, then the TDS pre-login, TLS handshake and login.
pub(crate) struct Manager {
    config: Config,
    tcp_timeout: Duration,
    login_timeout: Duration,
}

impl Manager {
    pub fn new(config: Config, tcp_timeout: Duration, login_timeout: Duration) -> Manager {
        Manager {
            config,
            tcp_timeout,
            login_timeout,
        }
    }

    async fn open(&self, config: Config) -> Result<Client, ConnectError> {
        let addr = config.get_addr();
        let tcp = match tokio::time::timeout(self.tcp_timeout, TcpStream::connect(&addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(ConnectError::Tcp(e.to_string())),
            Err(_) => {
                return Err(ConnectError::Tcp(format!(
                    "no answer within {} s",
                    self.tcp_timeout.as_secs()
                )))
            }
        };
        // Lower latency for the many small statements of a run; failing to set it is harmless.
        let _ = tcp.set_nodelay(true);
        // tiberius logs a WARN of its own on every connection that trusts the certificate;
        // the sink says that once per run, at INFO (MssqlSink::connect), so tiberius's events
        // of the login phase are not forwarded (its errors come back as values).
        let login = tiberius::Client::connect(config, tcp.compat_write())
            .with_subscriber(tracing::subscriber::NoSubscriber::default());
        match tokio::time::timeout(self.login_timeout, login).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(ConnectError::Login(e)),
            Err(_) => Err(ConnectError::LoginTimeout(self.login_timeout.as_secs())),
        }
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Client;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Client, ConnectError> {
        match self.open(self.config.clone()).await {
            // An Azure SQL gateway may send the client on to another host; follow it once.
            Err(ConnectError::Login(tiberius::error::Error::Routing { host, port })) => {
                let mut config = self.config.clone();
                config.host(&host);
                config.port(port);
                self.open(config).await
            }
            other => other,
        }
    }

    async fn is_valid(&self, conn: &mut Client) -> Result<(), ConnectError> {
        conn.simple_query("SELECT 1")
            .await
            .map_err(ConnectError::Login)?;
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Client) -> bool {
        false
    }
}

/// The connection phases against local listeners: no SQL Server needed.
#[cfg(test)]
mod phase_tests {
    use std::time::{Duration, Instant};

    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    use crate::load::mssql::{MssqlOptions, MssqlSink};
    use crate::store::StoreError;

    fn opts(secs: u64) -> MssqlOptions {
        MssqlOptions {
            pool_size: 1,
            connect_timeout: Duration::from_secs(secs),
            ..MssqlOptions::default()
        }
    }

    fn string(port: u16, extra: &str) -> String {
        format!(
            "Server=tcp:127.0.0.1,{port};Database=oktell;User Id=b24;Password=Very$ecret42;{extra}"
        )
    }

    async fn refused(port: u16, extra: &str, secs: u64) -> (String, Duration) {
        let started = Instant::now();
        let err = MssqlSink::connect(&string(port, extra), opts(secs))
            .await
            .expect_err("no SQL Server there");
        assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            !text.contains("Very$ecret42") && !text.contains('\n'),
            "{text}"
        );
        (text, started.elapsed())
    }

    /// A port nothing listens on (bound once, then released).
    async fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[tokio::test]
    async fn a_closed_port_asks_whether_the_server_runs() {
        let port = closed_port().await;
        let (text, _) = refused(port, "TrustServerCertificate=true", 2).await;
        assert!(
            text.starts_with(&format!("cannot open the database 127.0.0.1:{port}/oktell: no TCP connection to 127.0.0.1:{port}")),
            "{text}"
        );
        assert!(text.contains("is the server running"), "{text}");
        assert!(!text.contains("TLS"), "{text}");
    }

    #[tokio::test]
    async fn a_server_that_accepts_and_says_nothing_is_a_tls_or_login_problem() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts, keeps the connection open, never answers (what a server that cannot
        // negotiate TLS looked like to tiberius 0.12).
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let (text, took) = refused(port, "TrustServerCertificate=true", 1).await;
        silent.abort();
        assert!(
            text.contains("the server accepted the TCP connection, but the TLS handshake and login did not complete within 1 s"),
            "{text}"
        );
        assert!(
            text.contains("must offer TLS") && text.contains("Encrypt=DANGER_PLAINTEXT"),
            "{text}"
        );
        assert!(!text.contains("is the server running"), "{text}");
        assert!(
            took < Duration::from_secs(5),
            "bounded by the login timeout: {took:?}"
        );
    }

    #[tokio::test]
    async fn a_server_that_answers_garbage_is_named_as_the_tls_or_login_phase() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let garbage = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = s.shutdown().await;
            }
        });
        let (text, _) = refused(port, "", 2).await;
        garbage.abort();
        assert!(
            text.contains("the server accepted the TCP connection, but the TLS handshake"),
            "{text}"
        );
        assert!(!text.contains("is the server running"), "{text}");
    }
}
