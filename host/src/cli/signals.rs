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
/// Ctrl-C (SIGINT) is [`INTERRUPTED`]: `chat` stops the turn on it rather than leave.
pub async fn interrupted() -> &'static str {
    match Signals::new() {
        Some(mut signals) => signals.next().await,
        // Without handlers the default action (exit) applies; never resolve.
        None => std::future::pending().await,
    }
}

/// SIGINT, SIGTERM and SIGHUP (unless ignored by `nohup`), caught for as long as this lives: a
/// signal that comes while nobody awaits [`Signals::next`] is kept for the next call, so a
/// loop that holds one misses none between two waits.
pub struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// `None` when the handlers cannot be installed.
    pub fn new() -> Option<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let int = signal(SignalKind::interrupt()).ok()?;
        let term = signal(SignalKind::terminate()).ok()?;
        let hup = if hangup_ignored() {
            None
        } else {
            signal(SignalKind::hangup()).ok()
        };
        Some(Self { int, term, hup })
    }

    /// The next signal: [`INTERRUPTED`], `terminated` or `hung up`.
    pub async fn next(&mut self) -> &'static str {
        let hangup = async {
            match &mut self.hup {
                Some(hup) => hup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.int.recv() => INTERRUPTED,
            _ = self.term.recv() => "terminated",
            _ = hangup => "hung up",
        }
    }
}

/// What [`interrupted`] says for Ctrl-C (SIGINT).
pub const INTERRUPTED: &str = "interrupted";

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
