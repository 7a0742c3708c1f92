//! Keys pressed at the terminal while a turn runs (`chat`, with the line editor): **Esc stops
//! the turn**, as Ctrl-C does (corral raises SIGINT on itself, so both take the same way), and
//! what else is typed is kept: each line ended with Enter is a prompt sent once the turn is
//! over, one per turn, in order, and the text after the last Enter is put on the next
//! prompt's line.
//!
//! During a turn the terminal is out of canonical mode with echo off, and signals on: Ctrl-C
//! still raises SIGINT in the kernel, output is unchanged. The editor thread watches stdin
//! ([`watch`]) until the prompt loop asks it for something else (the next line, an answer),
//! then puts the terminal's settings back.
//!
//! An ESC byte begins the escape sequences of the arrow and function keys too: one with no
//! byte after it within [`ESC_ALONE`] is the Esc key; one followed by `[` or `O` begins a
//! sequence, which is skipped whole; one followed by anything else is Alt with that key,
//! skipped as well.

use std::time::Duration;

/// An ESC with no byte after it within this is the Esc key, not the start of a sequence.
pub const ESC_ALONE: Duration = Duration::from_millis(30);

/// How often the watch looks whether the prompt loop wants the terminal back.
pub const POLL: Duration = Duration::from_millis(50);

/// The most characters of typeahead kept for the next prompt.
pub const MAX_TYPEAHEAD: usize = 4096;

/// What the bytes typed during a turn come to.
#[derive(Debug, Default)]
pub struct Keys {
    lines: Vec<String>,
    typed: String,
    utf8: Vec<u8>,
    state: State,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Text,
    /// An ESC was the last byte.
    Escape,
    /// Inside a `ESC [` or `ESC O` sequence, up to its final byte.
    Sequence,
}

impl Keys {
    /// Takes bytes as read from the terminal.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state = match (self.state, byte) {
                (State::Escape, b'[' | b'O') => State::Sequence,
                (State::Escape, 0x1b) => State::Escape,
                (State::Escape, _) => State::Text,
                (State::Sequence, 0x40..=0x7e) => State::Text,
                (State::Sequence, _) => State::Sequence,
                (State::Text, 0x1b) => State::Escape,
                (State::Text, 0x7f | 0x08) => {
                    self.utf8.clear();
                    self.typed.pop();
                    State::Text
                }
                (State::Text, b'\r' | b'\n') => {
                    if !self.typed.trim().is_empty() {
                        self.lines.push(std::mem::take(&mut self.typed));
                    }
                    self.typed.clear();
                    State::Text
                }
                (State::Text, b'\t') => {
                    self.push_char(' ');
                    State::Text
                }
                (State::Text, 0x00..=0x1f) => State::Text,
                (State::Text, _) => {
                    self.utf8.push(byte);
                    match std::str::from_utf8(&self.utf8) {
                        Ok(text) => {
                            let text = text.to_string();
                            self.utf8.clear();
                            text.chars().for_each(|c| self.push_char(c));
                        }
                        Err(e) if e.error_len().is_some() => self.utf8.clear(),
                        Err(_) => {}
                    }
                    State::Text
                }
            };
        }
    }

    fn push_char(&mut self, c: char) {
        if self.typed.chars().count() < MAX_TYPEAHEAD {
            self.typed.push(c);
        }
    }

    /// Whether the bytes so far end in an ESC that may be the Esc key (if nothing follows
    /// within [`ESC_ALONE`]).
    pub fn ends_in_escape(&self) -> bool {
        self.state == State::Escape
    }

    /// Nothing followed the ESC: it was the Esc key, and is used up.
    pub fn escape_pressed(&mut self) {
        self.state = State::Text;
    }

    /// What was typed so far (control keys and sequences left out): the lines ended with
    /// Enter, and the text after the last one.
    pub fn take_typed(&mut self) -> (Vec<String>, String) {
        (
            std::mem::take(&mut self.lines),
            std::mem::take(&mut self.typed),
        )
    }
}

/// Watches the terminal's keys until `stop` says to (it is asked every [`POLL`]): the
/// terminal is put in non-canonical mode without echo for the while and back after. Esc
/// raises SIGINT on corral. Returns what was typed ([`Keys::take_typed`]). Not at a terminal,
/// only waits for `stop`.
pub fn watch(mut stop: impl FnMut(Duration) -> bool) -> (Vec<String>, String) {
    use std::os::fd::AsRawFd;
    let stdin = std::io::stdin();
    let fd = stdin.as_raw_fd();
    // SAFETY: tcgetattr writes one termios through a valid pointer of ours.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
        while !stop(POLL) {}
        return Default::default();
    }
    let mut quiet = saved;
    quiet.c_lflag &= !(libc::ICANON | libc::ECHO);
    quiet.c_lflag |= libc::ISIG;
    quiet.c_cc[libc::VMIN] = 1;
    quiet.c_cc[libc::VTIME] = 0;
    // SAFETY: tcsetattr reads one valid termios of ours.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &quiet) };
    let mut keys = Keys::default();
    let mut buffer = [0u8; 256];
    while !stop(Duration::ZERO) {
        if !readable(fd, POLL) {
            continue;
        }
        // SAFETY: reading into a buffer of ours, of its length.
        let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
        if n <= 0 {
            // End of input or an error: nothing more to watch; wait to be stopped.
            while !stop(POLL) {}
            break;
        }
        keys.feed(&buffer[..n as usize]);
        if keys.ends_in_escape() && !readable(fd, ESC_ALONE) {
            keys.escape_pressed();
            // SAFETY: a signal to our own process, handled by chat's signal stream.
            unsafe { libc::kill(libc::getpid(), libc::SIGINT) };
        }
    }
    // SAFETY: as above; the settings saved before.
    unsafe { libc::tcsetattr(fd, libc::TCSANOW, &saved) };
    keys.take_typed()
}

/// Whether `fd` has bytes to read within `wait`.
fn readable(fd: i32, wait: Duration) -> bool {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one pollfd of ours.
    (unsafe { libc::poll(&mut poll, 1, ms) }) > 0 && poll.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text is kept (backspace works on it), arrows and Alt keys are skipped, a trailing ESC
    /// may be the Esc key.
    #[test]
    fn text_sequences_and_escape() {
        let mut keys = Keys::default();
        keys.feed(b"fix thx\x7f\x7fhe\x1b[Atest\x1bOB\x1bx s\xc3\xa9");
        assert!(!keys.ends_in_escape());
        keys.feed(b"\x1b");
        assert!(keys.ends_in_escape());
        keys.escape_pressed();
        keys.feed(b"!\r\nand th");
        assert_eq!(
            keys.take_typed(),
            (vec!["fix thetest sé!".to_string()], "and th".to_string())
        );
        keys.feed(b"\x1b[1;5C\r");
        assert!(!keys.ends_in_escape());
        assert_eq!(
            keys.take_typed(),
            (vec![], String::new()),
            "an empty Enter is no line"
        );
    }
}
