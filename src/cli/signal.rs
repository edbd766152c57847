//! Waiting for the signals that end a long-running command.

/// Completes on the first SIGINT (Ctrl-C) or SIGTERM (what `kill`, systemd and Nomad send to
/// stop a task). On platforms without SIGTERM, only Ctrl-C counts.
pub async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};

        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            // Ctrl-C in a terminal.
            result = tokio::signal::ctrl_c() => result,
            // A supervisor asking the process to stop.
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
