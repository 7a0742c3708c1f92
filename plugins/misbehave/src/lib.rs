//! The `misbehave` plugin: tools that break the rules on purpose, for corral's own
//! tests. Never grant it anything in a real workspace.
//!
//! | tool | what it does |
//! | --- | --- |
//! | `spin` | loops forever (deadline) |
//! | `hog` | allocates and touches memory without bound (memory limit) |
//! | `recurse` | recurses without bound (stack limit) |
//! | `panic` | panics (trap) |
//! | `escape` | tries every way out of the sandbox and reports each as JSON |
//! | `noisy` | writes a lot to stdout and stderr, logs once per level (capture, log) |
//! | `echo` | returns its input unchanged (benchmark) |
//! | `sleep` | sleeps without using CPU (deadline, concurrency) |
//! | `write_file_wasm` | writes a workspace file (write grants) |
//! | `env_var` | reads one environment variable (env grants) |
//! | `fs` | runs a script of file operations (attacks on the file grants) |
//! | `hold` | opens files and sleeps holding them (an abandoned call's descriptors) |
//! | `flood` | logs and returns as many bytes as asked (byte caps) |

mod escape;
mod fs_ops;

use std::borrow::Cow;
use std::hint::black_box;
use std::io::Write as _;

use corral_plugin::schemars::{self, JsonSchema, Schema, SchemaGenerator, json_schema};
use corral_plugin::{Level, Tool, ToolError, log};
use serde::Deserialize;
use serde_json::value::RawValue;

pub use escape::Escape;
pub use fs_ops::{Flood, Fs, Hold};

corral_plugin::export_plugin! {
    description: "Misbehaving tools for testing corral's limits and sandbox.",
    // Asks for everything so a test can grant any of it; each test grants only what
    // it needs, and `escape` proves the rest stays shut.
    capabilities: Capabilities {
        read: vec!["**".into()],
        write: vec!["**".into()],
        network: vec!["*".into()],
        env: vec!["*".into()],
    },
    tools: [Spin, Hog, Recurse, Panic, Escape, Noisy, Echo, Sleep, WriteFile, EnvVar, Fs, Hold, Flood],
}

/// An input with no fields (unknown fields are ignored).
#[derive(Deserialize, JsonSchema)]
pub struct NoArgs {}

/// `spin`: never returns; only the host's deadline ends it.
pub struct Spin;

impl Tool for Spin {
    const NAME: &'static str = "spin";
    const DESCRIPTION: &'static str = "Loop forever.";
    type Args = NoArgs;

    fn call(_: NoArgs) -> Result<String, ToolError> {
        let mut n: u64 = 0;
        loop {
            n = black_box(n.wrapping_add(1));
        }
    }
}

/// The input of `hog`.
#[derive(Deserialize, JsonSchema)]
pub struct HogArgs {
    /// Bytes per allocation.
    #[serde(default = "default_chunk")]
    pub chunk_bytes: usize,
}

fn default_chunk() -> usize {
    1 << 20
}

/// `hog`: allocates and touches memory until the host's memory limit stops it.
pub struct Hog;

impl Tool for Hog {
    const NAME: &'static str = "hog";
    const DESCRIPTION: &'static str = "Allocate memory without bound.";
    type Args = HogArgs;

    fn call(args: HogArgs) -> Result<String, ToolError> {
        let chunk = args.chunk_bytes.max(1);
        let mut kept: Vec<Vec<u8>> = Vec::new();
        loop {
            // Writing every byte makes the pages real, whatever the allocator does.
            kept.push(black_box(vec![0xA5; chunk]));
            black_box(&kept);
        }
    }
}

/// `recurse`: recurses until the host's stack limit stops it.
pub struct Recurse;

/// Each frame keeps a buffer alive across the recursive call and uses the result, so
/// the optimizer can turn it neither into a loop nor into a tail call.
#[inline(never)]
fn deeper(depth: u64) -> u64 {
    let mut frame = black_box([0u8; 512]);
    frame[(depth % 512) as usize] = depth as u8;
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = deeper(depth + 1);
    black_box(&frame);
    below.wrapping_add(u64::from(frame[(below % 512) as usize]))
}

impl Tool for Recurse {
    const NAME: &'static str = "recurse";
    const DESCRIPTION: &'static str = "Recurse without bound.";
    type Args = NoArgs;

    fn call(_: NoArgs) -> Result<String, ToolError> {
        Ok(deeper(0).to_string())
    }
}

/// The input of `panic`.
#[derive(Deserialize, JsonSchema)]
pub struct PanicArgs {
    /// The panic message.
    #[serde(default = "default_panic_message")]
    pub message: String,
}

fn default_panic_message() -> String {
    "misbehave: panic on purpose".into()
}

/// `panic`: panics with the given message (a trap for the host).
pub struct Panic;

impl Tool for Panic {
    const NAME: &'static str = "panic";
    const DESCRIPTION: &'static str = "Panic.";
    type Args = PanicArgs;

    #[allow(clippy::panic)]
    fn call(args: PanicArgs) -> Result<String, ToolError> {
        panic!("{}", args.message)
    }
}

/// The input of `noisy`.
#[derive(Deserialize, JsonSchema)]
pub struct NoisyArgs {
    /// Bytes to write to each of stdout and stderr.
    #[serde(default = "default_noise")]
    pub bytes: usize,
}

fn default_noise() -> usize {
    1_000_000
}

/// `noisy`: writes `bytes` to stdout and to stderr, in lines, then returns a summary.
pub struct Noisy;

impl Tool for Noisy {
    const NAME: &'static str = "noisy";
    const DESCRIPTION: &'static str = "Write a lot to stdout and stderr.";
    type Args = NoisyArgs;

    fn call(args: NoisyArgs) -> Result<String, ToolError> {
        let line = "noisy: the quick brown fox jumps over the lazy dog 0123456789\n";
        let mut written = [0usize; 2];
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        while written[0] < args.bytes {
            let take = line.len().min(args.bytes - written[0]);
            // A host that closes the pipes makes these fail; the tool goes on.
            let _ = out.write_all(&line.as_bytes()[..take]);
            let _ = err.write_all(&line.as_bytes()[..take]);
            written[0] += take;
            written[1] += take;
        }
        let _ = out.flush();
        let _ = err.flush();
        for level in [
            Level::Trace,
            Level::Debug,
            Level::Info,
            Level::Warn,
            Level::Error,
        ] {
            log(
                level,
                format!("noisy: wrote {} bytes to stdout and stderr", written[0]),
            );
        }
        Ok(format!(
            "wrote {} bytes to stdout and {} bytes to stderr",
            written[0], written[1]
        ))
    }
}

/// Any JSON input, kept as the exact text received.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct RawInput(pub Box<RawValue>);

impl JsonSchema for RawInput {
    fn schema_name() -> Cow<'static, str> {
        "RawInput".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "object", "additionalProperties": true })
    }
}

/// `echo`: returns its input text unchanged (surrounding whitespace aside).
pub struct Echo;

impl Tool for Echo {
    const NAME: &'static str = "echo";
    const DESCRIPTION: &'static str = "Return the input unchanged.";
    type Args = RawInput;

    fn call(args: RawInput) -> Result<String, ToolError> {
        Ok(args.0.get().to_string())
    }
}

/// The input of `sleep`.
#[derive(Deserialize, JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

/// `sleep`: blocks on the monotonic clock for `ms` milliseconds, then says so.
pub struct Sleep;

impl Tool for Sleep {
    const NAME: &'static str = "sleep";
    const DESCRIPTION: &'static str = "Sleep for ms milliseconds.";
    type Args = SleepArgs;

    fn call(args: SleepArgs) -> Result<String, ToolError> {
        std::thread::sleep(std::time::Duration::from_millis(args.ms));
        Ok(format!("slept {} ms", args.ms))
    }
}

/// The input of `write_file_wasm`.
#[derive(Deserialize, JsonSchema)]
pub struct WriteArgs {
    /// Workspace-relative path of the file to write.
    pub path: String,
    /// The text to write.
    pub content: String,
}

/// `write_file_wasm`: writes `/workspace/<path>`; fails naming the path if refused.
pub struct WriteFile;

impl Tool for WriteFile {
    const NAME: &'static str = "write_file_wasm";
    const DESCRIPTION: &'static str = "Write a file in the workspace.";
    type Args = WriteArgs;

    fn call(args: WriteArgs) -> Result<String, ToolError> {
        let path = format!("/workspace/{}", args.path.trim_start_matches('/'));
        std::fs::write(&path, &args.content)
            .map_err(|e| ToolError::failed(format!("cannot write `{}`: {e}", args.path)))?;
        Ok(format!(
            "wrote {} bytes to {}",
            args.content.len(),
            args.path
        ))
    }
}

/// The input of `env_var`.
#[derive(Deserialize, JsonSchema)]
pub struct EnvArgs {
    /// The variable's name.
    pub name: String,
}

/// `env_var`: the value of one environment variable, or `unset`.
pub struct EnvVar;

impl Tool for EnvVar {
    const NAME: &'static str = "env_var";
    const DESCRIPTION: &'static str = "Read an environment variable.";
    type Args = EnvArgs;

    fn call(args: EnvArgs) -> Result<String, ToolError> {
        Ok(std::env::var(&args.name).unwrap_or_else(|_| "unset".into()))
    }
}
