//! Child processes in their own process group, killed with the group on drop.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};

/// A child process leading its own process group; dropping it kills the whole group, so
/// helpers the server started (shell wrappers, Erlang's beam) go too.
pub struct ProcessGroup {
    child: Child,
    name: String,
}

impl ProcessGroup {
    /// Spawns `command` as the leader of a new process group; panics (failing the test) when
    /// it cannot start.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        command.process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        Self {
            child,
            name: name.to_owned(),
        }
    }

    /// Returns the child, to read its pipes or wait for it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Panics when the process already exited, with its status.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("bound socket has an address")
        .port()
}
