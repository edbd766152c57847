//! `steward dev consul`: runs the Consul emulator until Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::{CliError, CliResult};
use crate::sim::consul::{ConsulEmulator, ConsulEmulatorConfig};

/// Run an emulated Consul agent (KV, transactions, sessions, blocking queries).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Address to listen on (host:port, such as 127.0.0.1:8500 or localhost:0); port 0 picks a
    /// free port.
    #[arg(long, default_value = "127.0.0.1:8500", value_parser = parse_listen_addr)]
    pub addr: SocketAddr,

    /// Directory that keeps the KV and sessions across restarts; memory only without it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Require this ACL token on every request, as a management token under a default-deny
    /// policy.
    #[arg(long, env = "STEWARD_DEV_CONSUL_ACL_TOKEN", hide_env_values = true)]
    pub acl_token: Option<String>,
}

/// Parses a listen address given as `ip:port` or `host:port`, resolving a host name such
/// as `localhost`. Among several addresses the first IPv4 one is taken, so `localhost`
/// gives 127.0.0.1 where the resolver lists ::1 first.
pub fn parse_listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let resolved: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| {
            format!("invalid listen address {text:?} ({error}): give host:port, such as 127.0.0.1:8500 or localhost:0")
        })?
        .collect();
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("listen address {text:?} resolves to no address: give an IP address such as 127.0.0.1"))
}

/// Returns the warning to print when an emulator listens beyond loopback, or `None` on a
/// loopback address. `authenticated` is whether every request must carry a token.
pub fn exposure_warning(service: &str, addr: SocketAddr, authenticated: bool) -> Option<String> {
    if addr.ip().is_loopback() {
        return None;
    }
    let access = if authenticated {
        "it requires the ACL token, but serves plain HTTP, so the token and data travel unencrypted"
    } else {
        "it has no authentication, so anyone who can reach it can read and change its state (set --acl-token or listen on 127.0.0.1)"
    };
    Some(format!(
        "warning: the {service} emulator listens on {addr}, which is not a loopback address: {access}"
    ))
}

/// Prints [`exposure_warning`] to stderr when there is one.
pub fn warn_if_exposed(service: &str, addr: SocketAddr, authenticated: bool) {
    if let Some(warning) = exposure_warning(service, addr, authenticated) {
        eprintln!("{warning}");
    }
}

/// Starts the emulator and serves until Ctrl-C.
pub async fn run(args: Args) -> CliResult {
    warn_if_exposed("Consul", args.addr, args.acl_token.is_some());
    let config = ConsulEmulatorConfig {
        addr: args.addr,
        data_dir: args.data_dir,
        acl_token: args.acl_token,
        ..ConsulEmulatorConfig::default()
    };
    let consul = ConsulEmulator::start(config)
        .await
        .map_err(CliError::failure)?;
    super::output::println(format!("consul emulator listening on {}", consul.url()))?;

    let cancel = consul.cancel_token();
    tokio::select! {
        // Ctrl-C stops the server gracefully.
        result = tokio::signal::ctrl_c() => {
            result.context("failed to wait for Ctrl-C")?;
            cancel.cancel();
        }
        // The token is also cancelled if the server stops by itself.
        _ = cancel.cancelled() => {}
    }
    consul.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_accepts_ip_and_localhost() {
        assert_eq!(
            parse_listen_addr("127.0.0.1:8500"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 8500)))
        );
        let localhost = parse_listen_addr("localhost:0").expect("localhost resolves");
        assert!(localhost.ip().is_loopback(), "{localhost}");
        assert_eq!(localhost.port(), 0);
    }

    #[test]
    fn listen_addr_rejects_missing_port() {
        let error = parse_listen_addr("localhost").expect_err("no port");
        assert!(error.contains("\"localhost\""), "{error}");
    }

    #[test]
    fn warning_only_beyond_loopback() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        assert_eq!(exposure_warning("Consul", loopback, false), None);

        let any = SocketAddr::from(([0, 0, 0, 0], 0));
        let open = exposure_warning("Consul", any, false).expect("warning without a token");
        assert!(open.contains("no authentication"), "{open}");
        let token = exposure_warning("Consul", any, true).expect("warning with a token");
        assert!(token.contains("plain HTTP"), "{token}");
    }
}
