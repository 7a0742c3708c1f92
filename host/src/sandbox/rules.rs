//! `[shell] allow = [...]` and `deny = [...]`: which command lines the model's `bash` calls and
//! background tasks may run, checked before a command is spawned.
//!
//! **These rules guard against mistakes; they are not the sandbox.** A determined command can
//! hide what it runs from any parser: it can write a script file and run it, build a program
//! name in a variable (`$CMD push`), or call `git -C dir push`. What a command can reach is
//! decided by the kernel confinement ([`super`]); the rules stop the model from running, by
//! mistake or by eagerness, something the user said not to run.
//!
//! # The grammar of a rule
//! A rule is one simple command written as words, split like a shell splits them (quotes and
//! backslashes as in `sh`), then compared word by word with each command the line runs:
//!
//! - `git status`: exactly these words. `git status` and `git 'status'` match; `git status -s`
//!   does not.
//! - `cargo test *` (a `*` as a word of its own at the end): these words and anything after,
//!   including nothing: `cargo test`, `cargo test -p x`; not `cargo testx`.
//!   `npm run test:*` (Claude Code's spelling) means the same as `npm run test *`.
//! - `git push*`, `rm -rf /*` (a `*` glued to the last word): the last word is a prefix, and
//!   anything may follow: `git push`, `git pushx`, `git push -f`; `rm -rf /`, `rm -rf /home`.
//!   Write `cargo test *` (with the space) when `cargo testx` must not match.
//! - `*` alone: every command.
//!
//! A `*` anywhere else is an error (quote it, `'*'`, to match a literal star), and so is a rule
//! that is empty, has an unclosed quote, or holds more than one command (`&&`, `;`, `|`, `&`,
//! `$(...)`).
//!
//! # What is checked
//! The command line is split (aware of single and double quotes, backslashes, comments and here
//! documents) at `&&`, `||`, `;`, `|`, `|&`, `&`, newlines and subshell parentheses; the command
//! lines inside `$(...)`, backticks and `<(...)`/`>(...)` are checked as commands too, and so is
//! the string of `sh -c STRING` (`bash`, `dash`, `zsh`, `ksh` likewise), up to [`MAX_NESTING`]
//! levels deep. Each simple command is then split into words by the `shell-words` crate; its
//! leading `VAR=value` assignments, its redirections (`2>&1`, `> out`, `<<EOF`) and leading
//! keywords (`if`, `then`, `while`, `do`, `!`, `{`, ...) are dropped, and these wrappers are
//! looked through, with their options: `env`, `sudo`, `nohup`, `time`, `command`, `exec`,
//! `xargs`, `nice`, `timeout`.
//!
//! - **deny** ([`CommandRules::deny`]) is matched against each command as written and as seen
//!   through each wrapper, so `sudo *` denies `sudo rm x` and `rm *` denies it too. A deny rule
//!   whose first word has no `/` also matches a program given by path (`/usr/bin/git push` is
//!   denied by `git push*`). Deny beats allow.
//! - **allow** ([`CommandRules::allow`]) is matched against the command a wrapper runs
//!   (`nohup cargo test` is allowed by `cargo test *`), the program as written. Every simple
//!   command of the line needs an allow rule (builtins too: add `cd *` to allow `cd dir &&
//!   cargo test`), except `sh -c STRING`, whose string is checked instead. Each inner list comes
//!   from one settings file; a command must match a rule of every non-empty list, so adding a
//!   file can only narrow.
//! - A line that cannot be parsed (an unclosed quote, `$(`, backtick) is refused as
//!   [`RefusalReason::Unparsable`] when any rule exists. Without rules everything passes
//!   unparsed.
//!
//! Known blind spots besides the ones above: options before a subcommand (`git -C x push`),
//! compound commands other than `if`/`while`/`until`/`{ }` (under allow rules, a `for` loop's
//! body is checked but `case` patterns may be refused), and a quoted argument that looks like a
//! redirection (`echo '>'`), which is dropped like one.
//!
//! Who calls it: the shell tool and the background manager, once per command, with the rules
//! the settings parsed ([`Rule::parse`] runs when a settings file is read). A refusal is shown to
//! the model as an error result naming the rule; nothing is run.

use std::fmt;

/// How deep command lines may nest (`$(...)` inside `sh -c '...'` inside backticks ...) before
/// the line is refused as unparsable.
pub const MAX_NESTING: usize = 8;

/// How many characters of a refused command a [`Refusal`] shows; longer ones are cut with `…`.
pub const SHOWN_COMMAND_CHARS: usize = 200;

/// What a substitution (`$(...)`, backticks) becomes in the command that contains it: a word
/// no rule written by hand is likely to match.
const SUBSTITUTION: &str = "$(…)";

/// Programs looked through: the command they run is checked as well (deny) or instead (allow).
const WRAPPERS: &[&str] = &[
    "env", "sudo", "nohup", "time", "command", "exec", "xargs", "nice", "timeout",
];

/// Shells whose `-c STRING` is checked as a command line.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash"];

/// Words that start a compound command or a part of one; dropped before the command.
const KEYWORDS: &[&str] = &[
    "!", "{", "}", "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "esac",
];

/// Words that start a compound command whose own words are not a command (`for x in a b`).
const NOT_COMMANDS: &[&str] = &["for", "case", "select", "function"];

/// One allow or deny rule, parsed. `Display` shows it as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    raw: String,
    words: Vec<String>,
    tail: Tail,
}

/// What a rule allows after its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tail {
    /// Nothing: the command is exactly the words.
    Exact,
    /// ` *` or `:*`: any further words, or none.
    AnyWords,
    /// `word*`: the last word is a prefix of the command's word; any further words.
    WordPrefix,
}

impl Rule {
    /// Parses a rule (grammar in the module doc). The error names the rule and says what is
    /// wrong with it.
    pub fn parse(raw: &str) -> Result<Rule, String> {
        let text = raw.trim();
        let bad = |why: &str| Err(format!("bad [shell] rule `{raw}`: {why}"));
        if text.is_empty() {
            return bad("it is empty");
        }
        let (body, tail) = if let Some(body) = strip_wildcard(text, ":*") {
            (body, Tail::AnyWords)
        } else if let Some(body) = strip_wildcard(text, "*") {
            if body.is_empty() || body.ends_with(char::is_whitespace) {
                (body, Tail::AnyWords)
            } else {
                (body, Tail::WordPrefix)
            }
        } else {
            (text, Tail::Exact)
        };
        match split_line(body) {
            Err(why) => return bad(&why),
            Ok(split) if split.parts.len() > 1 || !split.nested.is_empty() => {
                return bad(
                    "a rule is one command; `&&`, `||`, `;`, `|`, `&`, parentheses, `$(...)` \
                     and backticks cannot be part of it",
                );
            }
            Ok(_) => {}
        }
        if has_unquoted_star(body) {
            return bad(
                "`*` is a wildcard only at the end of a rule; quote it ('*') to match a star",
            );
        }
        let words = match shell_words::split(body) {
            Ok(words) => words,
            Err(_) => return bad("an unclosed quote"),
        };
        if words.is_empty() && tail != Tail::AnyWords {
            return bad("it is empty");
        }
        Ok(Rule {
            raw: text.to_string(),
            words,
            tail,
        })
    }

    /// Whether this rule matches one command's words. `by_name`: a first rule word without `/`
    /// also matches a program given by path whose file name it is (used for deny rules).
    fn matches(&self, command: &[String], by_name: bool) -> bool {
        let n = self.words.len();
        if command.len() < n || (self.tail == Tail::Exact && command.len() != n) {
            return false;
        }
        self.words
            .iter()
            .zip(command)
            .enumerate()
            .all(|(i, (want, got))| {
                let fits = |got: &str| {
                    if i + 1 == n && self.tail == Tail::WordPrefix {
                        got.starts_with(want.as_str())
                    } else {
                        got == want
                    }
                };
                fits(got) || (i == 0 && by_name && !want.contains('/') && fits(file_name(got)))
            })
    }
}

/// The rule as written (trimmed).
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// `text` without `suffix`, when it ends with it and the suffix's `*` is not escaped by a
/// backslash.
fn strip_wildcard<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let body = text.strip_suffix(suffix)?;
    let backslashes = body.chars().rev().take_while(|c| *c == '\\').count();
    (backslashes % 2 == 0).then_some(body)
}

/// Whether `text` holds a `*` outside quotes and not escaped.
fn has_unquoted_star(text: &str) -> bool {
    let mut chars = text.chars();
    let mut quote = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\\') | (Some('"'), '\\') => {
                chars.next();
            }
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '*') => return true,
            _ => {}
        }
    }
    false
}

/// The part of a program path after its last `/`.
fn file_name(program: &str) -> &str {
    program.rsplit('/').next().unwrap_or(program)
}

/// The rules of one workspace: the deny rules of all settings files together, and one allow
/// list per settings file. Empty (the default): every command passes.
#[derive(Debug, Clone, Default)]
pub struct CommandRules {
    /// A command matching any of these is refused, whatever allows it.
    pub deny: Vec<Rule>,
    /// One list per settings file; an empty list says nothing. When any list is non-empty, each
    /// command of a line must match a rule of every non-empty list.
    pub allow: Vec<Vec<Rule>>,
}

impl CommandRules {
    /// No rule at all: [`CommandRules::check`] passes everything without parsing it.
    pub fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.allow.iter().all(Vec::is_empty)
    }

    /// Checks a command line before it runs (what is checked: the module doc). `Err` names the
    /// first command refused, denied ones first, and why; the caller shows it to the model and
    /// runs nothing.
    pub fn check(&self, command: &str) -> Result<(), Refusal> {
        if self.is_empty() {
            return Ok(());
        }
        // A function named like an allowed command runs whatever its body says, and a body is
        // not checked where it is called: a line that defines one is refused.
        if defines_function(command) {
            return Err(Refusal {
                part: shown(command),
                reason: RefusalReason::Unparsable(
                    "it defines a shell function, whose calls [shell] rules cannot check".into(),
                ),
            });
        }
        let mut commands = Vec::new();
        if let Err(why) = collect(command, 0, &mut commands) {
            return Err(Refusal {
                part: shown(command),
                reason: RefusalReason::Unparsable(why),
            });
        }
        for simple in &commands {
            for view in &simple.views {
                if let Some(rule) = self.deny.iter().find(|rule| rule.matches(view, true)) {
                    return Err(Refusal {
                        part: shown(&simple.text),
                        reason: RefusalReason::Denied(rule.clone()),
                    });
                }
            }
        }
        let lists: Vec<&Vec<Rule>> = self.allow.iter().filter(|l| !l.is_empty()).collect();
        if lists.is_empty() {
            return Ok(());
        }
        for simple in &commands {
            if simple.runs_shell_string {
                continue;
            }
            let Some(view) = simple.views.last() else {
                continue;
            };
            if !lists
                .iter()
                .all(|list| list.iter().any(|rule| rule.matches(view, false)))
            {
                return Err(Refusal {
                    part: shown(&simple.text),
                    reason: RefusalReason::NotAllowed,
                });
            }
        }
        Ok(())
    }
}

/// Why a command line is not run: the command of it that was refused (as written, cut at
/// [`SHOWN_COMMAND_CHARS`]) and the reason. `Display` is one line for the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub part: String,
    pub reason: RefusalReason,
}

/// The reason of a [`Refusal`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalReason {
    /// A deny rule matches the command: this rule.
    Denied(Rule),
    /// Allow rules exist and some list has no rule matching the command.
    NotAllowed,
    /// Rules exist and the line cannot be parsed: why.
    Unparsable(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const WHERE: &str = "(corral.toml or the user's config.toml)";
        let part = &self.part;
        match &self.reason {
            RefusalReason::Denied(rule) => write!(
                f,
                "`{part}` is refused by the [shell] deny rule \"{rule}\" {WHERE}; do not work \
                 around it: ask the user"
            ),
            RefusalReason::NotAllowed => write!(
                f,
                "`{part}` is refused: it matches no [shell] allow rule {WHERE}; use an allowed \
                 command or ask the user to allow it"
            ),
            RefusalReason::Unparsable(why) => write!(
                f,
                "`{part}` is refused: corral cannot parse it ({why}) to check it against the \
                 [shell] allow and deny rules {WHERE}"
            ),
        }
    }
}

impl std::error::Error for Refusal {}

/// `text` trimmed, its first [`SHOWN_COMMAND_CHARS`] characters, `…` when cut.
fn shown(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(SHOWN_COMMAND_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// One simple command of a line, ready to be matched.
#[derive(Debug)]
struct Simple {
    /// As written in the line (substitutions replaced by [`SUBSTITUTION`]).
    text: String,
    /// Its words, then the words of what each wrapper runs; empty when nothing runs (only
    /// assignments, a keyword).
    views: Vec<Vec<String>>,
    /// It is `sh -c STRING`: STRING was collected as a line of its own.
    runs_shell_string: bool,
}

/// Every simple command of `line` and of the lines nested in it, into `out`. `Err`: why the line
/// cannot be parsed.
fn collect(line: &str, depth: usize, out: &mut Vec<Simple>) -> Result<(), String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "it nests commands more than {MAX_NESTING} levels deep"
        ));
    }
    let split = split_line(line)?;
    for nested in &split.nested {
        collect(nested, depth + 1, out)?;
    }
    for part in split.parts {
        let words = shell_words::split(&part).map_err(|_| "an unclosed quote".to_string())?;
        let (views, shell_string) = look_through(words);
        if let Some(string) = &shell_string {
            collect(string, depth + 1, out)?;
        }
        out.push(Simple {
            text: part,
            views,
            runs_shell_string: shell_string.is_some(),
        });
    }
    Ok(())
}

/// Whether `command` may define a shell function: `name()` (spaces allowed inside) or the
/// `function` keyword as a word. Quoted text is looked at too: a false alarm only refuses.
fn defines_function(command: &str) -> bool {
    static PATTERN: std::sync::LazyLock<Option<regex::Regex>> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"(^|[^A-Za-z0-9_$])[A-Za-z_][A-Za-z0-9_.:-]*\s*\(\s*\)|(^|[\s;&|({])function\s",
        )
        .ok()
    });
    PATTERN.as_ref().is_none_or(|re| re.is_match(command))
}

/// The views of one simple command's words (see [`Simple::views`]) and, when the last view is
/// `sh -c STRING`, STRING.
fn look_through(words: Vec<String>) -> (Vec<Vec<String>>, Option<String>) {
    let mut words = strip_redirections(words);
    let keywords = words
        .iter()
        .take_while(|w| KEYWORDS.contains(&w.as_str()))
        .count();
    words.drain(..keywords);
    if words
        .first()
        .is_some_and(|w| NOT_COMMANDS.contains(&w.as_str()))
    {
        return (Vec::new(), None);
    }
    let mut view = skip_assignments(words);
    let mut views = Vec::new();
    while !view.is_empty() {
        let next = unwrap(&view);
        views.push(view);
        match next {
            Some(inner) => view = skip_assignments(inner),
            None => break,
        }
    }
    let shell_string = views.last().and_then(|v| shell_string(v));
    (views, shell_string)
}

/// The words without redirections (`2>&1`, `>out`, `> out`, `<<EOF`, `&>>log`).
fn strip_redirections(words: Vec<String>) -> Vec<String> {
    const OPERATORS: &[&str] = &[
        "&>>", "<<<", "<<-", ">>", ">&", ">|", "<<", "<>", "<&", "&>", ">", "<",
    ];
    let mut kept = Vec::with_capacity(words.len());
    let mut words = words.into_iter();
    while let Some(word) = words.next() {
        let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
        match OPERATORS.iter().find(|op| rest.starts_with(*op)) {
            Some(op) if rest.len() == op.len() => {
                words.next(); // the target is the next word
            }
            Some(_) => {}
            None => kept.push(word),
        }
    }
    kept
}

/// The words after the leading `NAME=value` (and `NAME+=value`) assignments.
fn skip_assignments(mut words: Vec<String>) -> Vec<String> {
    let assignments = words.iter().take_while(|w| is_assignment(w)).count();
    words.drain(..assignments);
    words
}

fn is_assignment(word: &str) -> bool {
    let Some((name, _)) = word.split_once('=') else {
        return false;
    };
    let name = name.strip_suffix('+').unwrap_or(name);
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// When `words` is a wrapper running a command, that command's words.
fn unwrap(words: &[String]) -> Option<Vec<String>> {
    let program = file_name(words.first()?);
    if !WRAPPERS.contains(&program) {
        return None;
    }
    // The short and long options of each wrapper that take a value.
    let (short, long): (&str, &[&str]) = match program {
        "env" => ("uCS", &["unset", "chdir", "split-string"]),
        "sudo" => (
            "ugCDhprtTU",
            &[
                "user",
                "group",
                "close-from",
                "chdir",
                "host",
                "prompt",
                "role",
                "type",
                "command-timeout",
                "other-user",
            ],
        ),
        "time" => ("fo", &["format", "output"]),
        "exec" => ("a", &[]),
        "xargs" => (
            // Not `-i`, `-e`, `-l`: their values are optional and only ever glued.
            "ILnPsdEa",
            &[
                "replace",
                "max-lines",
                "max-args",
                "max-procs",
                "max-chars",
                "delimiter",
                "eof",
                "arg-file",
                "process-slot-var",
            ],
        ),
        "nice" => ("n", &["adjustment"]),
        "timeout" => ("sk", &["signal", "kill-after"]),
        _ => ("", &[]),
    };
    let mut rest = words[1..].iter();
    let mut prepend: Vec<String> = Vec::new();
    let mut inner: Vec<String> = Vec::new();
    while let Some(word) = rest.next() {
        if word == "--" {
            break;
        }
        if let Some(name) = word.strip_prefix("--") {
            let (name, glued) = match name.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (name, None),
            };
            if long.contains(&name) {
                let value = glued.or_else(|| rest.next().cloned());
                if program == "env" && name == "split-string" {
                    prepend = shell_words::split(&value.unwrap_or_default()).unwrap_or_default();
                }
            }
            continue;
        }
        match word.strip_prefix('-') {
            // `nice -5`, `nice -n 5`: a number is the adjustment itself.
            Some(flags) if !flags.is_empty() => {
                let chars: Vec<char> = flags.chars().collect();
                if let Some(at) = chars.iter().position(|c| short.contains(*c)) {
                    let glued: String = chars[at + 1..].iter().collect();
                    let value = if glued.is_empty() {
                        rest.next().cloned()
                    } else {
                        Some(glued)
                    };
                    if program == "env" && chars[at] == 'S' {
                        prepend =
                            shell_words::split(&value.unwrap_or_default()).unwrap_or_default();
                    }
                }
            }
            // `env -`: an empty environment.
            Some(_) if program == "env" => {}
            _ => {
                inner.push(word.clone());
                break;
            }
        }
    }
    inner.extend(rest.cloned());
    if program == "timeout" && !inner.is_empty() {
        inner.remove(0); // the duration
    }
    let mut command = prepend;
    command.extend(skip_assignments_if(
        program == "env" || program == "sudo",
        inner,
    ));
    (!command.is_empty()).then_some(command)
}

fn skip_assignments_if(skip: bool, words: Vec<String>) -> Vec<String> {
    if skip { skip_assignments(words) } else { words }
}

/// When `words` runs a shell with `-c STRING`, STRING.
fn shell_string(words: &[String]) -> Option<String> {
    if !SHELLS.contains(&file_name(words.first()?)) {
        return None;
    }
    let mut has_c = false;
    let mut rest = words[1..].iter();
    while let Some(word) = rest.next() {
        if word == "--" {
            return if has_c { rest.next().cloned() } else { None };
        }
        if word.starts_with("--") {
            continue;
        }
        if let Some(flags) = word.strip_prefix('-').or_else(|| word.strip_prefix('+')) {
            has_c |= word.starts_with('-') && flags.contains('c');
            if flags.contains('o') || flags.contains('O') {
                rest.next(); // `-o pipefail`
            }
            continue;
        }
        return has_c.then(|| word.clone());
    }
    None
}

/// A command line, split: its simple commands as text (substitutions replaced by
/// [`SUBSTITUTION`]) and the command lines nested in it.
#[derive(Debug, Default)]
struct Split {
    parts: Vec<String>,
    nested: Vec<String>,
}

/// Splits a command line (see the module doc). `Err` says what does not parse.
fn split_line(line: &str) -> Result<Split, String> {
    let mut splitter = Splitter {
        chars: line.chars().collect(),
        i: 0,
        cur: String::new(),
        out: Split::default(),
        heredocs: Vec::new(),
    };
    splitter.run()?;
    Ok(splitter.out)
}

/// A here document whose body starts after the current line.
struct Heredoc {
    delimiter: String,
    /// The delimiter is unquoted: `$(...)` and backticks in the body run.
    expands: bool,
    /// `<<-`: leading tabs are stripped from the body's lines.
    strip_tabs: bool,
}

struct Splitter {
    chars: Vec<char>,
    i: usize,
    cur: String,
    out: Split,
    heredocs: Vec<Heredoc>,
}

impl Splitter {
    fn at(&self, i: usize) -> Option<char> {
        self.chars.get(i).copied()
    }

    fn push(&mut self, from: usize, to: usize) {
        self.cur.extend(&self.chars[from..to]);
    }

    fn finish_part(&mut self) {
        let part = self.cur.trim();
        if !part.is_empty() {
            self.out.parts.push(part.to_string());
        }
        self.cur.clear();
    }

    fn run(&mut self) -> Result<(), String> {
        while let Some(c) = self.at(self.i) {
            let next = self.at(self.i + 1);
            let i = self.i;
            match c {
                '\\' => match next {
                    Some('\n') => self.i += 2,
                    Some(_) => {
                        self.push(i, i + 2);
                        self.i += 2;
                    }
                    None => return Err("a trailing backslash".into()),
                },
                '\'' => {
                    let end = find(&self.chars, i + 1, '\'')
                        .ok_or_else(|| "an unclosed single quote".to_string())?;
                    self.push(i, end + 1);
                    self.i = end + 1;
                }
                '"' => self.double_quoted()?,
                '`' => self.backtick()?,
                '$' if next == Some('(') => self.substitution(i + 2)?,
                '<' | '>' if next == Some('(') => self.substitution(i + 2)?,
                '#' if self.cur.is_empty() || self.cur.ends_with(char::is_whitespace) => {
                    self.i = find(&self.chars, i, '\n').unwrap_or(self.chars.len());
                }
                '\n' => {
                    self.finish_part();
                    self.heredoc_bodies()?;
                    self.i += 1;
                }
                ';' | ')' => {
                    self.finish_part();
                    self.i += 1;
                }
                '&' if self.cur.ends_with(['>', '<']) || next == Some('>') => {
                    self.push(i, i + 1);
                    self.i += 1;
                }
                '|' if self.cur.ends_with('>') => {
                    self.push(i, i + 1);
                    self.i += 1;
                }
                '&' | '|' => {
                    self.finish_part();
                    self.i += if next == Some('&') || (c == '|' && next == Some('|')) {
                        2
                    } else {
                        1
                    };
                }
                '(' if self.cur.ends_with('=') => {
                    // An array assignment, `a=(x y)`: words, not a command.
                    let close = find_close(&self.chars, i + 1)?;
                    self.push(i, close + 1);
                    self.i = close + 1;
                }
                '(' => {
                    self.finish_part();
                    self.i += 1;
                }
                '<' if next == Some('<') && self.at(i + 2) == Some('<') => {
                    self.push(i, i + 3);
                    self.i += 3;
                }
                '<' if next == Some('<') => self.heredoc_operator()?,
                _ => {
                    self.push(i, i + 1);
                    self.i += 1;
                }
            }
        }
        self.finish_part();
        Ok(())
    }

    /// At a `"`: the quoted text into the current part; substitutions in it are nested lines.
    fn double_quoted(&mut self) -> Result<(), String> {
        self.push(self.i, self.i + 1);
        self.i += 1;
        while let Some(c) = self.at(self.i) {
            let i = self.i;
            match c {
                '\\' => {
                    let end = (i + 2).min(self.chars.len());
                    self.push(i, end);
                    self.i = end;
                }
                '"' => {
                    self.push(i, i + 1);
                    self.i += 1;
                    return Ok(());
                }
                '`' => self.backtick()?,
                '$' if self.at(i + 1) == Some('(') => self.substitution(i + 2)?,
                _ => {
                    self.push(i, i + 1);
                    self.i += 1;
                }
            }
        }
        Err("an unclosed double quote".into())
    }

    /// At a backtick: its command line is nested; the part gets [`SUBSTITUTION`].
    fn backtick(&mut self) -> Result<(), String> {
        let (content, end) = backtick_content(&self.chars, self.i + 1)?;
        self.out.nested.push(content);
        self.cur.push_str(SUBSTITUTION);
        self.i = end + 1;
        Ok(())
    }

    /// After a `$(`, `<(` or `>(` (`start` is the first character inside): its command line is
    /// nested (for `$((...))`, only the substitutions in the arithmetic); the part gets
    /// [`SUBSTITUTION`].
    fn substitution(&mut self, start: usize) -> Result<(), String> {
        let close = find_close(&self.chars, start)?;
        let content: String = self.chars[start..close].iter().collect();
        let arithmetic =
            self.chars[start - 2] == '$' && content.starts_with('(') && content.ends_with(')');
        if arithmetic {
            self.out.nested.extend(substitutions_in(&content)?);
        } else {
            self.out.nested.push(content);
        }
        self.cur.push_str(SUBSTITUTION);
        self.i = close + 1;
        Ok(())
    }

    /// At a `<<` (not `<<<`): reads the delimiter; the body is read at the end of the line.
    fn heredoc_operator(&mut self) -> Result<(), String> {
        let start = self.i;
        let mut j = start + 2;
        let strip_tabs = self.at(j) == Some('-');
        if strip_tabs {
            j += 1;
        }
        while matches!(self.at(j), Some(' ' | '\t')) {
            j += 1;
        }
        let mut delimiter = String::new();
        let mut quoted = false;
        while let Some(c) = self.at(j) {
            match c {
                '\'' | '"' => {
                    let end = find(&self.chars, j + 1, c).ok_or_else(|| {
                        "an unclosed quote in a here document's delimiter".to_string()
                    })?;
                    delimiter.extend(&self.chars[j + 1..end]);
                    quoted = true;
                    j = end + 1;
                }
                '\\' => {
                    delimiter.extend(self.at(j + 1));
                    quoted = true;
                    j += 2;
                }
                c if c.is_whitespace() || ";&|()<>".contains(c) => break,
                c => {
                    delimiter.push(c);
                    j += 1;
                }
            }
        }
        if delimiter.is_empty() {
            return Err("a `<<` without a delimiter".into());
        }
        self.push(start, j.min(self.chars.len()));
        self.i = j;
        self.heredocs.push(Heredoc {
            delimiter,
            expands: !quoted,
            strip_tabs,
        });
        Ok(())
    }

    /// At the newline ending a line with `<<` operators: skips their bodies (nesting the
    /// substitutions of expanding ones), leaving `i` at the newline of the last delimiter line.
    fn heredoc_bodies(&mut self) -> Result<(), String> {
        for heredoc in std::mem::take(&mut self.heredocs) {
            let mut body = String::new();
            loop {
                let start = self.i + 1;
                if start > self.chars.len() {
                    break; // the end of the line: bash runs what it has
                }
                let end = find(&self.chars, start, '\n').unwrap_or(self.chars.len());
                let line: String = self.chars[start..end].iter().collect();
                self.i = end;
                let bare = if heredoc.strip_tabs {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if bare == heredoc.delimiter {
                    break;
                }
                body.push_str(&line);
                body.push('\n');
            }
            if heredoc.expands {
                self.out.nested.extend(substitutions_in(&body)?);
            }
        }
        Ok(())
    }
}

/// The index of the first `c` at or after `from`.
fn find(chars: &[char], from: usize, c: char) -> Option<usize> {
    chars
        .get(from..)?
        .iter()
        .position(|x| *x == c)
        .map(|p| p + from)
}

/// The command of a backtick substitution starting at `start` (after the opening backtick),
/// unescaped, and the index of the closing backtick.
fn backtick_content(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut content = String::new();
    let mut j = start;
    while let Some(&c) = chars.get(j) {
        match (c, chars.get(j + 1)) {
            ('\\', Some(&n)) if matches!(n, '`' | '\\' | '$') => {
                content.push(n);
                j += 2;
            }
            ('`', _) => return Ok((content, j)),
            _ => {
                content.push(c);
                j += 1;
            }
        }
    }
    Err("an unclosed backtick".into())
}

/// The index of the `)` closing a `(` just before `start`, aware of quotes, backslashes,
/// backticks and nested parentheses.
fn find_close(chars: &[char], start: usize) -> Result<usize, String> {
    let unclosed = || "an unclosed `$(` or `(`".to_string();
    let mut depth = 1usize;
    let mut j = start;
    while let Some(&c) = chars.get(j) {
        match c {
            '\\' => j += 2,
            '\'' => j = find(chars, j + 1, '\'').ok_or_else(unclosed)? + 1,
            '`' => j = backtick_content(chars, j + 1)?.1 + 1,
            '"' => {
                j += 1;
                loop {
                    match chars.get(j) {
                        None => return Err(unclosed()),
                        Some('\\') => j += 2,
                        Some('"') => break,
                        Some('`') => j = backtick_content(chars, j + 1)?.1 + 1,
                        Some('$') if chars.get(j + 1) == Some(&'(') => {
                            j = find_close(chars, j + 2)? + 1;
                        }
                        Some(_) => j += 1,
                    }
                }
                j += 1;
            }
            '(' => {
                depth += 1;
                j += 1;
            }
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
                j += 1;
            }
            _ => j += 1,
        }
    }
    Err(unclosed())
}

/// The command lines of the substitutions (`$(...)`, backticks) in text where quotes are not
/// special: an expanding here document's body, an arithmetic expression.
fn substitutions_in(text: &str) -> Result<Vec<String>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut nested = Vec::new();
    let mut j = 0;
    while let Some(&c) = chars.get(j) {
        match c {
            '\\' => j += 2,
            '`' => {
                let (content, end) = backtick_content(&chars, j + 1)?;
                nested.push(content);
                j = end + 1;
            }
            '$' if chars.get(j + 1) == Some(&'(') => {
                let close = find_close(&chars, j + 2)?;
                let content: String = chars[j + 2..close].iter().collect();
                if content.starts_with('(') && content.ends_with(')') {
                    nested.extend(substitutions_in(&content)?);
                } else {
                    nested.push(content);
                }
                j = close + 1;
            }
            _ => j += 1,
        }
    }
    Ok(nested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(raw: &str) -> Rule {
        Rule::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn rules(deny: &[&str], allow: &[&[&str]]) -> CommandRules {
        CommandRules {
            deny: deny.iter().map(|r| rule(r)).collect(),
            allow: allow
                .iter()
                .map(|list| list.iter().map(|r| rule(r)).collect())
                .collect(),
        }
    }

    /// What `check` says, short: "ok", "deny RULE: PART", "not allowed: PART", "unparsable".
    fn verdict(rules: &CommandRules, command: &str) -> String {
        match rules.check(command) {
            Ok(()) => "ok".into(),
            Err(Refusal {
                part,
                reason: RefusalReason::Denied(rule),
            }) => format!("deny {rule}: {part}"),
            Err(Refusal {
                part,
                reason: RefusalReason::NotAllowed,
            }) => format!("not allowed: {part}"),
            Err(Refusal {
                reason: RefusalReason::Unparsable(_),
                ..
            }) => "unparsable".into(),
        }
    }

    /// Notes in `wrong` when the verdict on `command` is not `expected`.
    fn expect(wrong: &mut Vec<String>, rules: &CommandRules, command: &str, expected: &str) {
        let got = verdict(rules, command);
        if got != expected {
            wrong.push(format!("{command:?}: got {got:?}, expected {expected:?}"));
        }
    }

    /// A rule matches the words of a single command as the grammar says: exact, ` *`, `:*`,
    /// a glued `*`, after shell-word splitting on both sides.
    #[test]
    fn rules_match_by_words() {
        for (rule_text, command, expected) in [
            ("git status", "git status", true),
            ("git status", "git 'status'", true),
            ("git status", "\"git\" status", true),
            ("git status", "git  status", true),
            ("git status", "git status -s", false),
            ("git status", "git", false),
            ("cargo test *", "cargo test", true),
            ("cargo test *", "cargo test -p x", true),
            ("cargo test *", "cargo testx", false),
            ("cargo test *", "cargo", false),
            ("npm run test:*", "npm run test", true),
            ("npm run test:*", "npm run test -- --watch", true),
            ("npm run test:*", "npm run testing", false),
            ("cargo test*", "cargo test", true),
            ("cargo test*", "cargo test -p x", true),
            ("cargo test*", "cargo testx", true),
            ("cargo test*", "cargo tes", false),
            ("git push*", "git push", true),
            ("git push*", "git push -f origin", true),
            ("git push*", "gitpush", false),
            ("git push*", "git", false),
            ("rm -rf /*", "rm -rf /", true),
            ("rm -rf /*", "rm -rf /home", true),
            ("rm -rf /*", "rm -rf /home /tmp", true),
            ("rm -rf /*", "rm -rf ./build", false),
            ("rm -rf /*", "rm -rf", false),
            ("*", "anything at all", true),
            ("echo '*'", "echo '*'", true),
            ("echo '*'", "echo x", false),
            ("echo a\\*", "echo 'a*'", true),
            ("echo a\\*", "echo ab", false),
        ] {
            let rules = rules(&[], &[&[rule_text]]);
            assert_eq!(
                rules.check(command).is_ok(),
                expected,
                "rule {rule_text:?} on {command:?}"
            );
        }
    }

    /// Bad rules are refused with a message naming the rule.
    #[test]
    fn bad_rules_are_errors() {
        for (raw, why) in [
            ("", "it is empty"),
            ("   ", "it is empty"),
            ("git 'push", "an unclosed single quote"),
            ("echo \"x", "an unclosed double quote"),
            ("git * --force", "`*` is a wildcard only at the end"),
            ("git status && git push", "a rule is one command"),
            ("git push; ls", "a rule is one command"),
            ("echo $(ls)", "a rule is one command"),
        ] {
            let err = Rule::parse(raw).expect_err(raw);
            assert!(
                err.starts_with(&format!("bad [shell] rule `{raw}`: ")),
                "{err}"
            );
            assert!(err.contains(why), "{raw:?}: {err}");
        }
        assert_eq!(rule("  git push*  ").to_string(), "git push*");
    }

    /// Every part of a line is checked against deny rules: after `&&`, `;`, `|`, `||`, `&`,
    /// newlines, in subshells, substitutions, `sh -c` strings, and through wrappers and
    /// assignments.
    #[test]
    fn deny_finds_every_part() {
        let rules = rules(&["git push*", "rm -rf /*", "sudo *"], &[]);
        let mut wrong = Vec::new();
        for (command, expected) in [
            ("git push", "deny git push*: git push"),
            ("git status", "ok"),
            ("git status && git push", "deny git push*: git push"),
            ("echo ok; git push", "deny git push*: git push"),
            ("true | git push -f", "deny git push*: git push -f"),
            ("true || git push", "deny git push*: git push"),
            ("sleep 1 & git push", "deny git push*: git push"),
            ("true |& git push", "deny git push*: git push"),
            ("echo a\ngit push origin", "deny git push*: git push origin"),
            ("(cd x && git push)", "deny git push*: git push"),
            ("echo $(git push)", "deny git push*: git push"),
            ("echo \"$(git push)\"", "deny git push*: git push"),
            ("echo `git push`", "deny git push*: git push"),
            ("echo \"`git push`\"", "deny git push*: git push"),
            ("echo $(echo $(git push))", "deny git push*: git push"),
            ("diff <(git push) x", "deny git push*: git push"),
            ("echo $(( $(git push) + 1 ))", "deny git push*: git push"),
            ("echo $((1 + 2))", "ok"),
            ("FOO=1 git push", "deny git push*: FOO=1 git push"),
            ("A=1 B=2 git push", "deny git push*: A=1 B=2 git push"),
            ("sh -c \"git push\"", "deny git push*: git push"),
            ("bash -c 'git status; git push'", "deny git push*: git push"),
            ("bash -lc 'git push'", "deny git push*: git push"),
            (
                "bash -e -o pipefail -c 'git push'",
                "deny git push*: git push",
            ),
            ("sh -c \"sh -c 'git push'\"", "deny git push*: git push"),
            ("git 'push'", "deny git push*: git 'push'"),
            ("g\"it\" push", "deny git push*: g\"it\" push"),
            ("gitpush", "ok"),
            ("/usr/bin/git push", "deny git push*: /usr/bin/git push"),
            ("env git push", "deny git push*: env git push"),
            (
                "env -i PATH=/bin git push",
                "deny git push*: env -i PATH=/bin git push",
            ),
            (
                "env -u HOME git push",
                "deny git push*: env -u HOME git push",
            ),
            ("env -S 'git push'", "deny git push*: env -S 'git push'"),
            ("nohup git push &", "deny git push*: nohup git push"),
            ("time git push", "deny git push*: time git push"),
            ("command git push", "deny git push*: command git push"),
            ("exec git push", "deny git push*: exec git push"),
            (
                "echo x | xargs -n 1 git push",
                "deny git push*: xargs -n 1 git push",
            ),
            ("nice -n 5 git push", "deny git push*: nice -n 5 git push"),
            ("xargs -i git push", "deny git push*: xargs -i git push"),
            (
                "xargs -0 -I {} git push {}",
                "deny git push*: xargs -0 -I {} git push {}",
            ),
            (
                "env -u HOME -- git push",
                "deny git push*: env -u HOME -- git push",
            ),
            (
                "timeout -s KILL 10 git push",
                "deny git push*: timeout -s KILL 10 git push",
            ),
            (
                "timeout 10 nohup env git push",
                "deny git push*: timeout 10 nohup env git push",
            ),
            ("sudo ls", "deny sudo *: sudo ls"),
            ("rm -rf /", "deny rm -rf /*: rm -rf /"),
            ("rm -rf /home", "deny rm -rf /*: rm -rf /home"),
            ("rm -rf ./build", "ok"),
            ("git push 2>&1", "deny git push*: git push 2>&1"),
            (
                "if true; then git push; fi",
                "deny git push*: then git push",
            ),
            (
                "while true; do git push; done",
                "deny git push*: do git push",
            ),
            ("! git push", "deny git push*: ! git push"),
            ("{ git push; }", "deny git push*: { git push"),
            (
                "for x in a; do git push; done",
                "deny git push*: do git push",
            ),
            ("echo 'git push'", "ok"),
            ("echo \"git push\"", "ok"),
            ("echo git push", "ok"),
            ("echo ok # git push", "ok"),
            ("echo ok # it's fine", "ok"),
            ("cat <<'EOF'\ngit push\nit's text\nEOF\necho done", "ok"),
            ("cat <<EOF\n$(git push)\nEOF", "deny git push*: git push"),
            (
                "cat <<-EOF > x\n\tgit push\n\tEOF\ngit push",
                "deny git push*: git push",
            ),
            ("echo a \\\n && git push", "deny git push*: git push"),
            ("echo a&&git push", "deny git push*: git push"),
            ("make 2>&1 | git push", "deny git push*: git push"),
            ("make &>/dev/null; git push", "deny git push*: git push"),
            ("make >|out; git push", "deny git push*: git push"),
            (
                "echo \"a;b)\" 'c|d' && git push",
                "deny git push*: git push",
            ),
            ("echo 'a && git push'", "ok"),
            ("a=(git push)", "ok"),
            ("echo '$(git push)' '`git push`'", "ok"),
        ] {
            expect(&mut wrong, &rules, command, expected);
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// With allow rules, every command of the line must be allowed; `sh -c` is judged by its
    /// string; wrappers by what they run; an assignment alone runs nothing.
    #[test]
    fn allow_needs_every_part() {
        let rules = rules(&[], &[&["cargo test *", "git status", "cd *", "echo*"]]);
        let mut wrong = Vec::new();
        for (command, expected) in [
            ("cargo test", "ok"),
            ("cargo test -p corral --lib", "ok"),
            ("cargo testx", "not allowed: cargo testx"),
            ("cargo build", "not allowed: cargo build"),
            ("git status", "ok"),
            ("git status -s", "not allowed: git status -s"),
            ("cd host && cargo test", "ok"),
            ("cd host && cargo build", "not allowed: cargo build"),
            ("git status; curl x", "not allowed: curl x"),
            ("echo $(curl x)", "not allowed: curl x"),
            ("echo $(git status)", "ok"),
            ("FOO=1 cargo test", "ok"),
            ("FOO=1", "ok"),
            ("nohup cargo test > log 2>&1 &", "ok"),
            ("timeout 60 cargo test", "ok"),
            ("sudo -u root -E -- cargo test", "ok"),
            ("sh -c 'cargo test'", "ok"),
            ("sh -c 'cargo build'", "not allowed: cargo build"),
            ("bash script.sh", "not allowed: bash script.sh"),
            ("", "ok"),
        ] {
            expect(&mut wrong, &rules, command, expected);
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Allow lists from several files intersect: a command must match a rule of every
    /// non-empty list; an empty list says nothing.
    #[test]
    fn allow_lists_intersect() {
        let rules = rules(&[], &[&["cargo *", "git status"], &[], &["cargo test *"]]);
        assert_eq!(verdict(&rules, "cargo test -p x"), "ok");
        assert_eq!(verdict(&rules, "cargo build"), "not allowed: cargo build");
        assert_eq!(verdict(&rules, "git status"), "not allowed: git status");
        let only_empty = rules_empty_lists();
        assert!(only_empty.is_empty());
        assert_eq!(verdict(&only_empty, "anything 'unclosed"), "ok");
    }

    fn rules_empty_lists() -> CommandRules {
        CommandRules {
            deny: Vec::new(),
            allow: vec![Vec::new(), Vec::new()],
        }
    }

    /// Deny beats allow, even `*`, and a deny anywhere in the line is reported before a part
    /// that is merely not allowed.
    #[test]
    fn function_definitions_are_refused() {
        let rules = CommandRules {
            deny: vec![Rule::parse("git push*").unwrap()],
            allow: vec![vec![Rule::parse("cargo test *").unwrap()]],
        };
        for line in [
            "cargo() { git push; }; cargo test",
            "function cargo { git push; }; cargo test",
            "cargo () { git push; }\ncargo test",
        ] {
            let refusal = rules.check(line).unwrap_err();
            assert!(
                matches!(refusal.reason, RefusalReason::Unparsable(_)),
                "{line}"
            );
        }
        assert!(rules.check("cargo test -p x").is_ok());
        let substitution = rules.check("cargo test $(echo x)").unwrap_err();
        assert_eq!(
            substitution.reason,
            RefusalReason::NotAllowed,
            "a substitution is no function"
        );
    }

    #[test]
    fn deny_beats_allow() {
        let rules = rules(&["git push*"], &[&["*"]]);
        assert_eq!(verdict(&rules, "git push"), "deny git push*: git push");
        assert_eq!(verdict(&rules, "git status"), "ok");
        let narrow = self::rules(&["git push*"], &[&["cargo test *"]]);
        assert_eq!(
            verdict(&narrow, "curl x; git push"),
            "deny git push*: git push"
        );
        // An allow rule for a path does not widen a deny by name.
        let by_path = self::rules(&["git push*"], &[&["/usr/bin/git *"]]);
        assert_eq!(
            verdict(&by_path, "/usr/bin/git push"),
            "deny git push*: /usr/bin/git push"
        );
        assert_eq!(verdict(&by_path, "/usr/bin/git log"), "ok");
        let allow_by_name = self::rules(&[], &[&["git *"]]);
        assert_eq!(
            verdict(&allow_by_name, "./git log"),
            "not allowed: ./git log",
            "allow compares the program as written"
        );
    }

    /// A line that does not parse is refused when rules exist, and passes when none do; nesting
    /// past the cap is refused.
    #[test]
    fn unparsable_lines() {
        let rules = rules(&["git push*"], &[]);
        for command in [
            "echo 'unclosed",
            "echo \"unclosed",
            "echo $(git status",
            "echo `git status",
            "echo \\",
            "cat <<",
        ] {
            assert_eq!(verdict(&rules, command), "unparsable", "{command:?}");
        }
        assert!(CommandRules::default().check("echo 'unclosed").is_ok());
        let mut deep = "git push".to_string();
        for _ in 0..=MAX_NESTING {
            deep = format!("sh -c {}", shell_words::quote(&deep));
        }
        assert_eq!(verdict(&rules, &deep), "unparsable");
        let mut ok = "git push".to_string();
        for _ in 0..MAX_NESTING {
            ok = format!("sh -c {}", shell_words::quote(&ok));
        }
        assert_eq!(verdict(&rules, &ok), "deny git push*: git push");
    }

    /// The refusal is one line naming the command and the rule; long commands are cut.
    #[test]
    fn refusals_read_well() {
        let rules = rules(&["git push*"], &[&["cargo test *"]]);
        let denied = rules.check("git push origin main").unwrap_err();
        assert_eq!(
            denied.to_string(),
            "`git push origin main` is refused by the [shell] deny rule \"git push*\" \
             (corral.toml or the user's config.toml); do not work around it: ask the user"
        );
        let not_allowed = rules.check("ls").unwrap_err().to_string();
        assert!(
            not_allowed.starts_with("`ls` is refused: it matches no [shell] allow rule"),
            "{not_allowed}"
        );
        let unparsable = rules.check("echo 'x").unwrap_err().to_string();
        assert!(
            unparsable.contains("(an unclosed single quote)"),
            "{unparsable}"
        );
        let long = format!("curl {}", "x".repeat(500));
        let refusal = rules.check(&long).unwrap_err();
        assert_eq!(refusal.part.chars().count(), SHOWN_COMMAND_CHARS + 1);
        assert!(refusal.part.ends_with('…'));
        assert!(!refusal.to_string().contains('\n'));
    }
}
