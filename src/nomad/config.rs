//! Nomad connection settings, read as the official `nomad` CLI reads them: environment
//! variables (`NOMAD_ADDR`, `NOMAD_TOKEN`…), each also settable with a flag.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::Error;

/// The address the official CLI uses when `NOMAD_ADDR` is not set.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:4646";

/// Nomad connection flags, flattened into the commands that talk to Nomad.
///
/// NOTE: `NOMAD_CAPATH`, `NOMAD_SKIP_VERIFY`, `NOMAD_TLS_SERVER_NAME` and `NOMAD_HTTP_AUTH`
/// of the official CLI are not read yet.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NomadArgs {
    /// Nomad HTTP API address, such as `http://127.0.0.1:4646` or `https://nomad.example:4646`.
    #[arg(long = "nomad-addr", env = "NOMAD_ADDR", default_value = DEFAULT_ADDRESS)]
    pub address: String,

    /// ACL token sent as `X-Nomad-Token`.
    #[arg(
        id = "nomad_token",
        long = "nomad-token",
        env = "NOMAD_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// Namespace of the jobs Steward reads and writes (Nomad's default: `default`).
    #[arg(long = "nomad-namespace", env = "NOMAD_NAMESPACE")]
    pub namespace: Option<String>,

    /// Region to send requests to (Nomad's default: the agent's region).
    #[arg(long = "nomad-region", env = "NOMAD_REGION")]
    pub region: Option<String>,

    /// PEM file of the CA that signed Nomad's certificate. It replaces the system roots.
    #[arg(id = "nomad_ca_cert", long = "nomad-cacert", env = "NOMAD_CACERT")]
    pub ca_cert: Option<PathBuf>,

    /// PEM client certificate for mutual TLS, used together with `--nomad-client-key`.
    #[arg(
        id = "nomad_client_cert",
        long = "nomad-client-cert",
        env = "NOMAD_CLIENT_CERT"
    )]
    pub client_cert: Option<PathBuf>,

    /// PEM private key of the client certificate, used together with `--nomad-client-cert`.
    #[arg(
        id = "nomad_client_key",
        long = "nomad-client-key",
        env = "NOMAD_CLIENT_KEY"
    )]
    pub client_key: Option<PathBuf>,
}

impl NomadArgs {
    /// Validates the flags into a [`Config`].
    pub fn to_config(&self) -> Result<Config, Error> {
        Config::new(&self.address)?
            .with_token(self.token.clone())
            .with_namespace(self.namespace.clone())
            .with_region(self.region.clone())
            .with_tls(
                self.ca_cert.clone(),
                self.client_cert.clone(),
                self.client_key.clone(),
            )
    }
}

/// An ACL token. Its `Debug` and `Display` print `<redacted>`, so it never reaches a log.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretToken(String);

impl SecretToken {
    /// Wraps a token, trimming surrounding whitespace as Nomad does.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into().trim().to_owned())
    }

    /// Returns the token itself, for the request header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

impl fmt::Display for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Validated Nomad connection settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base URL of the HTTP API, without the `/v1` prefix.
    pub address: Url,
    pub token: Option<SecretToken>,
    /// Sent as `?namespace=` on every request when set.
    pub namespace: Option<String>,
    /// Sent as `?region=` on every request when set.
    pub region: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    /// Timeout of a request that does not block. Blocking queries get `wait` plus a margin.
    pub request_timeout: Duration,
    /// Timeout of connection setup.
    pub connect_timeout: Duration,
}

impl Config {
    /// Builds settings for `address` (`http://` or `https://`; `host:port` alone means
    /// `http://host:port`) with no token, namespace, region or TLS files.
    pub fn new(address: &str) -> Result<Self, Error> {
        Ok(Self {
            address: parse_address(address)?,
            token: None,
            namespace: None,
            region: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        })
    }

    /// Reads the settings from the environment as the official CLI does, with its defaults.
    pub fn from_env() -> Result<Self, Error> {
        let variable = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let address = variable("NOMAD_ADDR").unwrap_or_else(|| DEFAULT_ADDRESS.to_owned());
        Self::new(&address)?
            .with_token(variable("NOMAD_TOKEN"))
            .with_namespace(variable("NOMAD_NAMESPACE"))
            .with_region(variable("NOMAD_REGION"))
            .with_tls(
                variable("NOMAD_CACERT").map(PathBuf::from),
                variable("NOMAD_CLIENT_CERT").map(PathBuf::from),
                variable("NOMAD_CLIENT_KEY").map(PathBuf::from),
            )
    }

    /// Sets the ACL token. An empty or blank token means none.
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token
            .map(SecretToken::new)
            .filter(|token| !token.expose().is_empty());
        self
    }

    /// Sets the namespace. An empty one means Nomad's default.
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace.filter(|namespace| !namespace.is_empty());
        self
    }

    /// Sets the region. An empty one means the agent's region.
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region.filter(|region| !region.is_empty());
        self
    }

    /// Sets the TLS files. A client certificate and its key must be given together.
    pub fn with_tls(
        mut self,
        ca_cert: Option<PathBuf>,
        client_cert: Option<PathBuf>,
        client_key: Option<PathBuf>,
    ) -> Result<Self, Error> {
        match (&client_cert, &client_key) {
            (Some(_), None) => {
                return Err(Error::Config(
                    "NOMAD_CLIENT_CERT is set but NOMAD_CLIENT_KEY is missing: set both \
                     (or --nomad-client-cert and --nomad-client-key) for mutual TLS"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(Error::Config(
                    "NOMAD_CLIENT_KEY is set but NOMAD_CLIENT_CERT is missing: set both \
                     (or --nomad-client-cert and --nomad-client-key) for mutual TLS"
                        .to_owned(),
                ));
            }
            _ => {}
        }

        self.ca_cert = ca_cert;
        self.client_cert = client_cert;
        self.client_key = client_key;
        Ok(self)
    }
}

fn parse_address(address: &str) -> Result<Url, Error> {
    let trimmed = address.trim();
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_owned()
    } else {
        format!("http://{trimmed}")
    };

    let url = Url::parse(&with_scheme).map_err(|error| {
        Error::Config(format!(
            "NOMAD_ADDR {address:?} is not a valid URL ({error}): use a form such as \
             http://127.0.0.1:4646"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "NOMAD_ADDR {address:?} uses the scheme {:?}: use http:// or https://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::Config(format!(
            "NOMAD_ADDR {address:?} has no host: use a form such as http://127.0.0.1:4646"
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_default_form() {
        let config = Config::new(DEFAULT_ADDRESS).expect("default address is valid");
        assert_eq!(config.address.as_str(), "http://127.0.0.1:4646/");
    }

    #[test]
    fn address_without_scheme_is_http() {
        let config = Config::new("10.0.0.5:4646").expect("host:port is valid");
        assert_eq!(config.address.scheme(), "http");
        assert_eq!(config.address.port(), Some(4646));
    }

    #[test]
    fn address_bad_scheme_rejected() {
        let error = Config::new("ftp://nomad:4646").expect_err("ftp is not supported");
        let message = error.to_string();
        assert!(message.contains("ftp"), "{message}");
        assert!(message.contains("http://"), "{message}");
    }

    #[test]
    fn token_redacted_in_debug() {
        let config = Config::new(DEFAULT_ADDRESS)
            .expect("valid address")
            .with_token(Some(" secret-token-value \n".to_owned()));
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret-token-value"), "{debug}");
        assert!(debug.contains("redacted"), "{debug}");
        let token = config.token.expect("token set");
        assert_eq!(token.expose(), "secret-token-value");
    }

    #[test]
    fn blank_token_means_none() {
        let config = Config::new(DEFAULT_ADDRESS)
            .expect("valid address")
            .with_token(Some("  ".to_owned()));
        assert!(config.token.is_none());
    }

    #[test]
    fn client_cert_needs_key() {
        let error = Config::new(DEFAULT_ADDRESS)
            .expect("valid address")
            .with_tls(None, Some(PathBuf::from("cert.pem")), None)
            .expect_err("a certificate without a key is invalid");
        assert!(error.to_string().contains("NOMAD_CLIENT_KEY"), "{error}");
    }

    #[test]
    fn args_parse_flags() {
        use clap::Parser;

        #[derive(Parser)]
        struct Command {
            #[command(flatten)]
            nomad: NomadArgs,
        }

        let command = Command::try_parse_from([
            "steward",
            "--nomad-addr",
            "https://nomad.internal:4646",
            "--nomad-namespace",
            "workers",
            "--nomad-region",
            "eu",
            "--nomad-token",
            "abc",
        ])
        .expect("flags parse");
        let config = command.nomad.to_config().expect("valid config");
        assert_eq!(config.address.scheme(), "https");
        assert_eq!(config.namespace.as_deref(), Some("workers"));
        assert_eq!(config.region.as_deref(), Some("eu"));
        assert_eq!(
            config
                .token
                .map(|token| token.expose().to_owned())
                .as_deref(),
            Some("abc")
        );
    }
}
