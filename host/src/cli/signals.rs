//! How `run` and `chat` stop: Ctrl-C (SIGINT), SIGTERM and SIGHUP (the terminal closed) all end
//! corral the same way, taking every command it started with it; and corral adopts the orphans
//! of those commands so none escapes (see [`corral::process::adopt_orphans`]).

use std::io::Write;

/// Makes corral a child subreaper, so what a command leaves behind is re-parented to corral and
/// ended with its task. Called before the agent starts anything. Without it (not Linux) the
/// process groups and trees of running commands are still ended.
pub fn contain() {
    hangup_ignored();
    if let Err(error) = corral::process::adopt_orphans() {
        tracing::debug!("corral cannot adopt orphaned processes: {error}");
    }
}

/// Resolves when corral receives SIGINT, SIGTERM or SIGHUP; says which. A SIGHUP that was
/// ignored when corral started (`nohup corral ...`) stays ignored.
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action (exit) applies; never resolve.
        return std::future::pending().await;
    };
    let mut hup = if hangup_ignored() {
        None
    } else {
        signal(SignalKind::hangup()).ok()
    };
    let hangup = async {
        match &mut hup {
            Some(hup) => hup.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = int.recv() => "interrupted",
        _ = term.recv() => "terminated",
        _ = hangup => "hung up",
    }
}

/// Whether SIGHUP was set to be ignored before corral installed any handler (`nohup`). Read
/// once, at the first call, before corral's own handler replaces the disposition.
fn hangup_ignored() -> bool {
    static IGNORED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IGNORED.get_or_init(|| {
        // SAFETY: sigaction with a null new action only reads the current one into `old`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            libc::sigaction(libc::SIGHUP, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == libc::SIG_IGN
        }
    })
}

/// Writes a last line on stderr, ignoring a failure: after SIGHUP the terminal may be gone,
/// and `eprintln!` would panic on it.
pub fn last_words(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
