//! Connection settings, read as the official `consul` CLI reads them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::client::ConsulClient;
use super::error::Error;
use super::keys::Keys;

/// Consul connection flags for any subcommand (`#[command(flatten)]`). Each flag also reads
/// the environment variable of the official CLI.
#[derive(Clone, clap::Args)]
pub struct ConsulArgs {
    /// Consul HTTP address, `host:port` or a URL with `http://` or `https://`.
    #[arg(
        long = "consul-addr",
        value_name = "ADDR",
        env = "CONSUL_HTTP_ADDR",
        default_value = "127.0.0.1:8500"
    )]
    pub http_addr: String,

    /// ACL token sent as `X-Consul-Token`.
    #[arg(
        long = "consul-token",
        env = "CONSUL_HTTP_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// File that contains the ACL token (used when no token is given).
    #[arg(
        long = "consul-token-file",
        value_name = "FILE",
        env = "CONSUL_HTTP_TOKEN_FILE"
    )]
    pub token_file: Option<PathBuf>,

    /// PEM file of the CA that signed Consul's certificate.
    #[arg(long = "consul-cacert", value_name = "FILE", env = "CONSUL_CACERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate for mutual TLS.
    #[arg(
        long = "consul-client-cert",
        value_name = "FILE",
        env = "CONSUL_CLIENT_CERT"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of the client certificate.
    #[arg(
        long = "consul-client-key",
        value_name = "FILE",
        env = "CONSUL_CLIENT_KEY"
    )]
    pub client_key: Option<PathBuf>,

    /// Use HTTPS when the address has no scheme (`true`/`false`, `1`/`0`, `yes`/`no` or `on`/`off`).
    #[arg(long = "consul-http-ssl", value_name = "BOOL", env = "CONSUL_HTTP_SSL", value_parser = clap::builder::BoolishValueParser::new())]
    pub http_ssl: Option<bool>,

    /// Key prefix under which Steward keeps its objects.
    #[arg(
        long = "prefix",
        value_name = "PREFIX",
        env = "STEWARD_PREFIX",
        default_value = "steward/"
    )]
    pub prefix: String,
}

impl fmt::Debug for ConsulArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsulArgs")
            .field("http_addr", &self.http_addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_file", &self.token_file)
            .field("ca_cert", &self.ca_cert)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("http_ssl", &self.http_ssl)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl ConsulArgs {
    /// Settings for `addr` with no token, TLS files or environment: what tests use.
    pub fn for_addr(addr: impl Into<String>) -> Self {
        Self {
            http_addr: addr.into(),
            token: None,
            token_file: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            http_ssl: None,
            prefix: "steward/".to_string(),
        }
    }

    /// Resolves the settings into a client configuration: reads the token file and the
    /// PEM files, and normalizes the address.
    pub fn to_config(&self) -> Result<ClientConfig, Error> {
        let base_url = normalize_address(&self.http_addr, self.http_ssl.unwrap_or(false))?;

        let token = match (&self.token, &self.token_file) {
            (Some(token), _) if !token.is_empty() => Some(Token(token.clone())),
            (_, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
                    message: format!("failed to read the token file {}: {e}", path.display()),
                })?;
                Some(Token(text.trim().to_string())).filter(|t| !t.0.is_empty())
            }
            _ => None,
        };

        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path).map_err(|e| Error::Config {
                message: format!("failed to read the {what} {}: {e}", path.display()),
            })
        };
        let ca_cert = self
            .ca_cert
            .as_ref()
            .map(|p| read(p, "CA certificate"))
            .transpose()?;
        let identity = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = read(cert, "client certificate")?;
                pem.push(b'\n');
                pem.extend(read(key, "client key")?);
                Some(pem)
            }
            (None, None) => None,
            _ => {
                return Err(Error::Config {
                    message: "set both CONSUL_CLIENT_CERT and CONSUL_CLIENT_KEY, or neither"
                        .to_string(),
                });
            }
        };

        Ok(ClientConfig {
            base_url,
            token,
            ca_cert_pem: ca_cert,
            identity_pem: identity,
            ..ClientConfig::new("http://127.0.0.1:8500")
        })
    }

    /// Builds a client from these settings.
    pub fn client(&self) -> Result<ConsulClient, Error> {
        ConsulClient::new(self.to_config()?)
    }

    /// Returns the key layout under `--prefix`.
    pub fn keys(&self) -> Result<Keys, Error> {
        Keys::new(&self.prefix)
    }
}

/// Turns `127.0.0.1:8500`, `http://host:8500` or `https://host:8501` into a base URL
/// without a trailing slash.
fn normalize_address(addr: &str, ssl: bool) -> Result<String, Error> {
    let addr = addr.trim().trim_end_matches('/');
    if addr.is_empty() {
        return Err(Error::Config {
            message: "CONSUL_HTTP_ADDR is empty; set it to host:port, e.g. 127.0.0.1:8500"
                .to_string(),
        });
    }
    if let Some(rest) = addr.strip_prefix("unix://") {
        return Err(Error::Config {
            message: format!("unix socket addresses ({rest}) are not supported; use host:port"),
        });
    }
    if addr.starts_with("http://") || addr.starts_with("https://") {
        return Ok(addr.to_string());
    }
    if addr.contains("://") {
        return Err(Error::Config {
            message: format!(
                "unsupported scheme in CONSUL_HTTP_ADDR {addr:?}; use http:// or https://"
            ),
        });
    }
    let scheme = if ssl { "https" } else { "http" };
    Ok(format!("{scheme}://{addr}"))
}

/// An ACL token. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(pub(crate) String);

impl Token {
    /// Wraps a token string.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Everything a [`ConsulClient`] needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL without a trailing slash, such as `http://127.0.0.1:8500`.
    pub base_url: String,
    pub token: Option<Token>,
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Client certificate followed by its key, both PEM.
    pub identity_pem: Option<Vec<u8>>,
    /// Timeout of a request that does not block.
    pub request_timeout: Duration,
    /// Added to `wait × 17/16` for the timeout of a blocking query.
    pub blocking_margin: Duration,
    pub connect_timeout: Duration,
    /// Largest transaction sent at once: 64, unless the server is known to be Consul 1.14 or
    /// later, which accepts 128.
    pub txn_max_ops: usize,
}

impl ClientConfig {
    /// Defaults for `base_url`: 30 s per plain request, 10 s blocking margin, 64 txn ops.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            token: None,
            ca_cert_pem: None,
            identity_pem: None,
            request_timeout: Duration::from_secs(30),
            blocking_margin: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            txn_max_ops: 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_forms_normalize() {
        assert_eq!(
            normalize_address("127.0.0.1:8500", false).unwrap(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            normalize_address("consul:8501", true).unwrap(),
            "https://consul:8501"
        );
        assert_eq!(
            normalize_address("https://c:8501/", false).unwrap(),
            "https://c:8501"
        );
        assert!(normalize_address("unix:///tmp/consul.sock", false).is_err());
        assert!(normalize_address("ftp://x", false).is_err());
    }

    #[test]
    fn debug_output_redacts_token() {
        let mut args = ConsulArgs::for_addr("127.0.0.1:8500");
        args.token = Some("s3cr3t-value".to_string());
        let debug_output = format!("{args:?} {:?}", args.to_config().unwrap());
        assert!(!debug_output.contains("s3cr3t-value"), "{debug_output}");
        assert!(debug_output.contains("redacted"));
    }

    #[test]
    fn token_file_is_read_and_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc-123\n").unwrap();
        let mut args = ConsulArgs::for_addr("127.0.0.1:8500");
        args.token_file = Some(path);
        assert_eq!(args.to_config().unwrap().token, Some(Token::new("abc-123")));
    }
}
