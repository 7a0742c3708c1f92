//! Running a command on a pseudo-terminal, to see what a person at a terminal would see.
//!
//! [`run_in_pty`] gives the command's stdout and stderr one pseudo-terminal (`openpty`, no
//! system package needed), reads everything written to it with the time it arrived, and
//! [`screen`] replays those bytes the way a terminal would (carriage returns, erased lines), so
//! a test can check both the stream (what was written, when) and the result (what stays on
//! screen).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The terminal's size: wide enough that the status line is never cut in tests.
const ROWS: u16 = 40;
const COLS: u16 = 200;

/// What a command wrote to its terminal.
#[derive(Debug)]
pub struct PtyOutput {
    /// The exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Each read from the terminal, with when it arrived (counted from the spawn).
    pub chunks: Vec<(Duration, Vec<u8>)>,
}

impl PtyOutput {
    /// Everything written, as text (the terminal turns `\n` into `\r\n`).
    pub fn raw(&self) -> String {
        let bytes: Vec<u8> = self.chunks.iter().flat_map(|(_, c)| c.clone()).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// When `needle` had first been written in full, counted from the spawn.
    pub fn first_seen(&self, needle: &str) -> Option<Duration> {
        let mut seen = Vec::new();
        for (at, chunk) in &self.chunks {
            seen.extend_from_slice(chunk);
            if String::from_utf8_lossy(&seen).contains(needle) {
                return Some(*at);
            }
        }
        None
    }

    /// The lines left on screen at the end (see [`screen`]).
    pub fn screen(&self) -> Vec<String> {
        screen(&self.raw())
    }

    /// Panics with the screen and the raw output unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- screen\n{}\n--- raw\n{:?}",
            self.screen().join("\n"),
            self.raw()
        );
        self
    }
}

/// Runs `cmd` with its stdout and stderr on a new pseudo-terminal and waits (at most
/// `timeout`, after which it is killed and the test fails). Its stdin is left as `cmd` says.
pub fn run_in_pty(cmd: Command, timeout: Duration) -> PtyOutput {
    run(cmd, timeout, None)
}

/// A reply that presses Ctrl-C: the program gets SIGINT, as a terminal's line discipline sends
/// it to its foreground process group (the test's pty is not the program's controlling
/// terminal, so the byte alone would not do it).
pub const CTRL_C: &str = "\u{3}";

/// Like [`run_in_pty`], with stdin on the terminal too, as a person types: each time the next
/// `(needle, reply)`'s needle has appeared in the output (after the previous needle), `reply`
/// is typed ([`CTRL_C`] presses Ctrl-C; an empty reply types nothing, to wait for two needles in
/// a row). The needles must appear in order; a needle that never comes fails the run at
/// `timeout`. The cursor-position queries of a line editor are answered as a terminal does.
pub fn run_in_pty_answering(
    cmd: Command,
    timeout: Duration,
    answers: Vec<(String, String)>,
) -> PtyOutput {
    run(cmd, timeout, Some(answers))
}

fn run(mut cmd: Command, timeout: Duration, answers: Option<Vec<(String, String)>>) -> PtyOutput {
    let (master, slave) = open_pty();
    if answers.is_some() {
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup the pty")));
    }
    cmd.stdout(Stdio::from(slave.try_clone().expect("dup the pty")))
        .stderr(Stdio::from(slave));
    let started = Instant::now();
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let shown = format!("{cmd:?}");
    // Close our copies of the terminal's slave side (held by `cmd`): when the child's close
    // too, reading the master side ends.
    drop(cmd);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        let answers = answers.unwrap_or_default();
        let pid = child.id() as libc::pid_t;
        std::thread::spawn(move || read_all(master, started, &done, answers, pid))
    };
    let deadline = started + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    done.store(true, Ordering::SeqCst);
    let chunks = reader.join().expect("the pty reader");
    let output = PtyOutput {
        code: status.and_then(|s| s.code()),
        chunks,
    };
    if status.is_none() {
        panic!(
            "{shown} did not finish within {timeout:?}\n--- screen\n{}",
            output.screen().join("\n")
        );
    }
    output
}

fn open_pty() -> (OwnedFd, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: ROWS,
        ws_col: COLS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors through the pointers, which are valid; the name
    // and termios pointers may be null; the size is read only.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// Reads the master side until every slave is closed (the read fails with EIO), or until
/// `done` is set and nothing more comes for 100 ms (a grandchild holding the terminal open).
/// Types each of `answers`' replies once its needle has been written since the last reply.
fn read_all(
    master: OwnedFd,
    started: Instant,
    done: &AtomicBool,
    answers: Vec<(String, String)>,
    pid: libc::pid_t,
) -> Vec<(Duration, Vec<u8>)> {
    let mut file = File::from(master);
    let mut keyboard = file.try_clone().expect("dup the pty master");
    let mut answers = answers.into_iter();
    let mut next = answers.next();
    let mut since_reply: Vec<u8> = Vec::new();
    let mut all: Vec<u8> = Vec::new();
    let mut positions_asked = 0;
    let mut chunks = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let mut poll = libc::pollfd {
            fd: file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the length given.
        let ready = unsafe { libc::poll(&mut poll, 1, 100) };
        if ready > 0 {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    chunks.push((started.elapsed(), buf[..n].to_vec()));
                    since_reply.extend_from_slice(&buf[..n]);
                    all.extend_from_slice(&buf[..n]);
                    answer_position_queries(&all, &mut positions_asked, &mut keyboard);
                    if let Some((needle, reply)) = &next
                        && let Some(at) = since_reply
                            .windows(needle.len())
                            .position(|w| w == needle.as_bytes())
                    {
                        use std::io::Write as _;
                        if reply == CTRL_C {
                            // SAFETY: a signal to the child this harness started.
                            unsafe { libc::kill(pid, libc::SIGINT) };
                        } else {
                            let _ = keyboard.write_all(reply.as_bytes());
                        }
                        // What came after the needle in the same read came before the reply
                        // too: the next needle may be in it.
                        since_reply.drain(..at + needle.len());
                        next = answers.next();
                    }
                }
            }
        } else if done.load(Ordering::SeqCst) {
            break;
        }
    }
    chunks
}

/// What a terminal asks for the cursor's position with (DSR); a line editor asks before it
/// draws its prompt and waits for the answer.
const POSITION_QUERY: &[u8] = b"\x1b[6n";

/// Answers each cursor-position query in `all` not answered yet, as a terminal does
/// (`ESC[row;colR`): the row is the count of lines written so far (at most [`ROWS`]), the
/// column the first. [`screen`] ignores cursor moves, so an approximate row does.
fn answer_position_queries(all: &[u8], answered: &mut usize, keyboard: &mut File) {
    use std::io::Write as _;
    let asked = all
        .windows(POSITION_QUERY.len())
        .filter(|w| *w == POSITION_QUERY)
        .count();
    while *answered < asked {
        *answered += 1;
        let lines = all.iter().filter(|&&b| b == b'\n').count();
        let row = (lines + 1).min(usize::from(ROWS));
        let _ = write!(keyboard, "\x1b[{row};1R");
    }
}

/// The lines a terminal shows after receiving `raw`: printable characters overwrite from the
/// cursor, `\r` returns to the line's start, `\n` starts a new line, `ESC[2K` erases the line
/// and `ESC[K` the rest of it; colours, cursor moves and other sequences are dropped. Trailing blanks are
/// trimmed, and so is a last empty line.
pub fn screen(raw: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let mut col = 0;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        let line = lines.last_mut().expect("a line");
        match c {
            '\r' => col = 0,
            '\n' => {
                lines.push(Vec::new());
                col = 0;
            }
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    // A two-character sequence (`ESC 7` saves the cursor, `ESC 8` restores it).
                    chars.next();
                    continue;
                }
                chars.next();
                let mut params = String::new();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        match (c, params.as_str()) {
                            ('K', "2") => line.clear(),
                            ('K', "" | "0") => line.truncate(col),
                            _ => {}
                        }
                        break;
                    }
                    params.push(c);
                }
            }
            c if c.is_control() => {}
            c => {
                if col < line.len() {
                    line[col] = c;
                } else {
                    line.resize(col, ' ');
                    line.push(c);
                }
                col += 1;
            }
        }
    }
    let mut out: Vec<String> = lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .collect();
    if out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out
}

/// How many colour (SGR) sequences, `ESC[...m`, `raw` holds.
pub fn colour_sequences(raw: &str) -> usize {
    raw.split("\x1b[")
        .skip(1)
        .filter(|rest| {
            let params = rest.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
            params.starts_with('m')
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_screen_replays_erased_and_overwritten_lines() {
        let raw = "one\r\n\r\x1b[2K⠋ waiting\r\x1b[2Ktwo \x1b[32mok\x1b[0m\r\nthree\r\n";
        assert_eq!(screen(raw), ["one", "two ok", "three"]);
        assert_eq!(colour_sequences(raw), 2);
        assert_eq!(colour_sequences("\r\x1b[2Kplain"), 0);
        assert_eq!(screen("\x1b7> typed\x1b8\x1b[?25h"), ["> typed"]);
    }
}
