//! The OpenAI Chat Completions provider end to end: the real `corral` binary with
//! `--provider openai` against the scripted OpenAI server, which checks the API's rules on every
//! request (every tool call answered by a `tool` message, no trailing assistant message, tools
//! well-formed).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use corral_tests::openai_server::{Reply, ToolCall, call};
use corral_tests::{Completion, Corral, OpenAiServer};
use serde_json::{Value, json};

/// A workspace whose corral talks to `server`.
fn corral_for(server: &OpenAiServer) -> Corral {
    Corral::new().env("OPENAI_BASE_URL", &server.url())
}

/// `corral run --provider openai --model gpt-test EXTRA... PROMPT`.
fn run(corral: &Corral, extra: &[&str], prompt: &str) -> corral_tests::RunOutput {
    let mut args = vec!["run", "--provider", "openai", "--model", "gpt-test"];
    args.extend_from_slice(extra);
    args.push(prompt);
    corral.run(None, &args)
}

/// The `tool` messages that end a request, as (tool_call_id, content).
fn tool_messages(body: &Value) -> Vec<(String, String)> {
    let messages = body["messages"].as_array().expect("messages");
    let mut out: Vec<(String, String)> = messages
        .iter()
        .rev()
        .skip_while(|m| m["role"] == "user")
        .take_while(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap_or("").to_string(),
                m["content"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    out.reverse();
    out
}

/// The `tool_calls` of the last assistant message of a request.
fn last_calls(body: &Value) -> Vec<Value> {
    let messages = body["messages"].as_array().expect("messages");
    let assistant = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "assistant")
        .expect("an assistant message");
    assistant["tool_calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn write_edit_read_script() -> Vec<Reply> {
    vec![
        Completion::text_and_tools(
            "I'll write the file.",
            vec![call(
                "call_w1",
                "write_file",
                json!({"path": "notes/hello.txt", "content": "hello world\nsecond line\n"}),
            )],
        )
        .into(),
        Completion::tools(vec![call(
            "call_e1",
            "edit_file",
            json!({"path": "notes/hello.txt", "old_text": "world", "new_text": "corral"}),
        )])
        .into(),
        Completion::tools(vec![call(
            "call_r1",
            "read_file",
            json!({"path": "notes/hello.txt"}),
        )])
        .into(),
        Completion::text("The file now says hello corral.").into(),
    ]
}

fn assert_write_edit_read(corral: &Corral, server: &OpenAiServer, out: &corral_tests::RunOutput) {
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(
        corral.read("notes/hello.txt"),
        "hello corral\nsecond line\n"
    );
    assert_eq!(out.stdout.trim(), "The file now says hello corral.");
    for tool in ["write_file", "edit_file", "read_file"] {
        assert!(
            out.stderr
                .lines()
                .any(|l| l.starts_with(&format!("● {tool} ")) && l.contains(" -> ok (")),
            "no line for {tool} in stderr:\n{}",
            out.stderr
        );
    }
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    assert!(bodies.iter().all(|b| b["model"] == "gpt-test"));
    // The system prompt is the first message and says where the agent works.
    let first = &bodies[0]["messages"][0];
    assert_eq!(first["role"], "system");
    let root = corral.workspace.path().canonicalize().expect("canon");
    assert!(
        first["content"]
            .as_str()
            .unwrap_or("")
            .contains(&root.display().to_string()),
        "{first}"
    );
    let names: Vec<&str> = bodies[0]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "bash",
            "read_file",
            "write_file",
            "edit_file",
            "background_run",
            "check_background",
            "kill_background"
        ]
    );
    // The whole conversation as OpenAI messages, on the last request.
    let roles: Vec<&str> = bodies[3]["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["role"].as_str())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "assistant",
            "tool",
            "assistant",
            "tool"
        ]
    );
    let messages = &bodies[3]["messages"];
    assert_eq!(messages[2]["content"], "I'll write the file.");
    assert_eq!(messages[4]["content"], Value::Null);
    assert_eq!(messages[2]["tool_calls"][0]["id"], "call_w1");
    let arguments: Value = serde_json::from_str(
        messages[2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .expect("arguments are JSON text"),
    )
    .expect("JSON");
    assert_eq!(arguments["path"], "notes/hello.txt");
    let read = tool_messages(&bodies[3]);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].0, "call_r1");
    assert!(
        read[0].1.contains("1\thello corral") && read[0].1.contains("2\tsecond line"),
        "{}",
        read[0].1
    );
}

/// corral writes a file, edits it and reads it back through an OpenAI-compatible server,
/// streaming: `stream_options` asks for usage, and no key means no Authorization header (a
/// local server needs none).
#[test]
fn writes_edits_and_reads_a_file_streaming() {
    let server = OpenAiServer::start(write_edit_read_script());
    let corral = corral_for(&server);
    let out = run(&corral, &[], "Say hello in notes/hello.txt");
    assert_write_edit_read(&corral, &server, &out);
    for request in server.requests() {
        assert_eq!(request.body["stream"], true);
        assert_eq!(request.body["stream_options"]["include_usage"], true);
        assert_eq!(request.body["max_tokens"], 8192);
        assert!(request.headers.get("authorization").is_none());
    }
}

/// The same run with whole JSON answers, and a key sent as `Authorization: Bearer`.
#[test]
fn writes_edits_and_reads_a_file_without_streaming() {
    let server = OpenAiServer::start(write_edit_read_script());
    let corral = corral_for(&server).env("OPENAI_API_KEY", "sk-test");
    let out = run(&corral, &["--no-stream"], "Say hello");
    assert_write_edit_read(&corral, &server, &out);
    for request in server.requests() {
        assert!(request.body.get("stream").is_none());
        assert!(request.body.get("stream_options").is_none());
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer sk-test")
        );
    }
}

/// A tool call whose arguments arrive one character a chunk (the id and name only in the first)
/// is put together whole: the file holds exactly what the model wrote, non-ASCII included.
#[test]
fn tool_calls_split_across_many_chunks() {
    let content = "ünïcödé → lines\n\t\"quoted\" {braces} and \\ backslashes\n";
    let arguments = json!({"path": "split.txt", "content": content});
    let many = arguments.to_string().chars().count();
    let server = OpenAiServer::start(vec![
        Completion::text_and_tools(
            "Writing it in many small pieces.",
            vec![call("call_split", "write_file", arguments)],
        )
        .in_pieces(many)
        .into(),
        Completion::text("done").in_pieces(4).into(),
    ]);
    let corral = corral_for(&server);
    let out = run(&corral, &[], "write");
    out.assert_code(0);
    server.assert_clean();
    assert_eq!(corral.read("split.txt"), content);
    assert_eq!(out.stdout.trim(), "done");
    let results = tool_messages(&server.bodies()[1]);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "call_split");
    assert!(!results[0].1.starts_with("Error"), "{}", results[0].1);
}

/// Two tool calls in one answer both run, and each gets its own `tool` message, in order.
#[test]
fn two_tool_calls_in_one_answer() {
    let script = || -> Vec<Reply> {
        vec![
            Completion::tools(vec![
                call(
                    "call_a",
                    "write_file",
                    json!({"path": "a.txt", "content": "A"}),
                ),
                call("call_b", "bash", json!({"command": "echo from-b > b.txt"})),
            ])
            .into(),
            Completion::text("both done").into(),
        ]
    };
    for stream in [true, false] {
        let server = OpenAiServer::start(script());
        let corral = corral_for(&server);
        let flags: &[&str] = if stream { &[] } else { &["--no-stream"] };
        run(&corral, flags, "two things").assert_code(0);
        server.assert_clean();
        assert_eq!(corral.read("a.txt"), "A");
        assert_eq!(corral.read("b.txt"), "from-b\n");
        let results = tool_messages(&server.bodies()[1]);
        let ids: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
        assert_eq!(ids, ["call_a", "call_b"], "stream: {stream}");
    }
}

/// Tool-call ids of any shape go back exactly as the server sent them (`"0"`, 40 characters),
/// and a call without an id gets a generated one that its `tool` message answers.
#[test]
fn odd_and_missing_tool_call_ids() {
    let long = "x".repeat(40);
    let script = || -> Vec<Reply> {
        vec![
            Completion::tools(vec![
                call("0", "bash", json!({"command": "echo zero"})),
                call(&long, "bash", json!({"command": "echo long"})),
                ToolCall {
                    id: None,
                    name: "bash".into(),
                    arguments: json!({"command": "echo anonymous"}).to_string(),
                },
            ])
            .into(),
            Completion::text("ok").into(),
        ]
    };
    for stream in [true, false] {
        let server = OpenAiServer::start(script());
        let corral = corral_for(&server);
        let flags: &[&str] = if stream { &[] } else { &["--no-stream"] };
        run(&corral, flags, "ids").assert_code(0);
        server.assert_clean();
        let body = &server.bodies()[1];
        let results = tool_messages(body);
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].0, "0");
        assert_eq!(results[1].0, long);
        assert!(results[2].0.starts_with("call_"), "{:?}", results[2]);
        let sent: Vec<String> = last_calls(body)
            .iter()
            .map(|c| c["id"].as_str().unwrap_or("").to_string())
            .collect();
        let answered: Vec<String> = results.iter().map(|r| r.0.clone()).collect();
        assert_eq!(sent, answered, "stream: {stream}");
        for (result, word) in results.iter().zip(["zero", "long", "anonymous"]) {
            assert!(result.1.contains(word), "{result:?}");
        }
    }
}

/// An answer that calls a tool with `content: null` (OpenAI's usual shape) and one with empty
/// text both work; corral's own tool-call message goes back with `content: null`.
#[test]
fn a_tool_call_message_with_null_content() {
    let server = OpenAiServer::start(vec![
        Completion::tools(vec![call(
            "call_1",
            "write_file",
            json!({"path": "n.txt", "content": "null content"}),
        )])
        .into(),
        Completion::text_and_tools(
            "",
            vec![call("call_2", "read_file", json!({"path": "n.txt"}))],
        )
        .into(),
        Completion::text("read it").into(),
    ]);
    let corral = corral_for(&server);
    run(&corral, &["--no-stream"], "null").assert_code(0);
    server.assert_clean();
    assert_eq!(corral.read("n.txt"), "null content");
    let last = &server.bodies()[2]["messages"];
    let assistants: Vec<&Value> = last
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["role"] == "assistant")
        .collect();
    assert_eq!(assistants.len(), 2);
    assert!(assistants.iter().all(|m| m["content"].is_null()));
}

/// Arguments that are not valid JSON get an error result the model can read; the call goes back
/// with `{}` as its arguments, which servers that parse them accept.
#[test]
fn malformed_arguments_become_an_error_result() {
    let server = OpenAiServer::start(vec![
        Completion::tools(vec![ToolCall {
            id: Some("call_bad".into()),
            name: "write_file".into(),
            arguments: "{\"path\": \"x.txt\", \"content\": ".into(),
        }])
        .into(),
        Completion::text("sorry").into(),
    ]);
    let corral = corral_for(&server);
    run(&corral, &[], "bad json").assert_code(0);
    server.assert_clean();
    let body = &server.bodies()[1];
    let results = tool_messages(body);
    assert_eq!(results.len(), 1);
    assert!(
        results[0].1.starts_with("Error: ") && results[0].1.contains("not valid JSON"),
        "{:?}",
        results[0]
    );
    assert_eq!(last_calls(body)[0]["function"]["arguments"], "{}");
    assert!(!corral.path("x.txt").exists());
}

/// A 429 (with retry-after) and a 503 are retried, and the run succeeds with the usage the
/// stream reported.
#[test]
fn a_rate_limit_is_retried() {
    let server = OpenAiServer::start(vec![
        Reply::Error {
            status: 429,
            kind: "rate_limit_exceeded".into(),
            message: "Rate limit reached for gpt-test".into(),
            retry_after: Some("0".into()),
        },
        Reply::Error {
            status: 503,
            kind: "server_error".into(),
            message: "The engine is currently overloaded".into(),
            retry_after: Some("0".into()),
        },
        Completion::text("made it").into(),
    ]);
    let corral = corral_for(&server);
    let out = run(&corral, &["--json"], "hi");
    out.assert_code(0);
    server.assert_clean();
    let events = out.events();
    let retries: Vec<&Value> = events.iter().filter(|e| e["type"] == "retrying").collect();
    assert_eq!(retries.len(), 2, "{events:#?}");
    assert!(
        retries[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("Rate limit reached"),
        "{}",
        retries[0]
    );
    let finished = events.last().expect("events");
    assert_eq!(finished["text"], "made it");
    // Usage comes from the stream's last chunk.
    assert_eq!(finished["usage"]["input_tokens"], 10, "{finished}");
    assert_eq!(finished["usage"]["output_tokens"], 5, "{finished}");
    let bodies = server.bodies();
    assert_eq!(bodies[0]["messages"], bodies[2]["messages"]);
}

/// A 401 is final: exit code 1, the API's own message, one request only.
#[test]
fn an_auth_error_shows_the_apis_message() {
    let server = OpenAiServer::start(vec![Reply::error(
        401,
        "invalid_request_error",
        "Incorrect API key provided: sk-wrong.",
    )]);
    let corral = corral_for(&server).env("OPENAI_API_KEY", "sk-wrong");
    let out = run(&corral, &[], "hi");
    out.assert_code(1);
    server.assert_clean();
    assert_eq!(server.requests().len(), 1);
    assert!(
        out.stderr.contains("Incorrect API key provided: sk-wrong."),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
}

/// A stream cut mid-message (no finish_reason, no `[DONE]`) is an error, retried, then fatal:
/// the tool it began to ask for never runs and no assistant message is kept.
#[test]
fn a_stream_cut_mid_message_is_an_error() {
    let completion = Completion::text_and_tools(
        "Writing",
        vec![call(
            "call_half",
            "write_file",
            json!({"path": "half.txt", "content": "x"}),
        )],
    );
    let server = OpenAiServer::start(vec![
        Reply::CutStream {
            completion: completion.clone(),
            chunks: 6,
        },
        Reply::CutStream {
            completion,
            chunks: 3,
        },
    ]);
    let corral = corral_for(&server);
    let out = run(&corral, &["--max-retries", "1"], "hi");
    out.assert_code(1);
    server.assert_clean();
    assert!(
        out.stderr
            .contains("stream ended before the message was complete"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("gave up after 2 attempts"),
        "{}",
        out.stderr
    );
    assert!(!corral.path("half.txt").exists());
    let session = std::fs::read_to_string(&corral.sessions()[0]).expect("session");
    assert!(
        !session.contains("\"assistant\""),
        "no assistant message was kept:\n{session}"
    );
}

/// `CORRAL_PROVIDER=openai` chooses the provider too; OpenAI's own endpoint without a key fails
/// before any request with a message saying what to set.
#[test]
fn the_provider_comes_from_the_environment_and_openai_needs_a_key() {
    let corral = Corral::new().env("CORRAL_PROVIDER", "openai");
    // --max-retries 0: were the check missing, the test would fail at once rather than retry
    // a connection to the internet.
    let out = corral.run(
        None,
        &["run", "--model", "gpt-test", "--max-retries", "0", "hi"],
    );
    // A configuration error, found before anything starts.
    out.assert_code(2);
    assert!(
        out.stderr.contains("OPENAI_API_KEY is not set"),
        "{}",
        out.stderr
    );
    let bad = Corral::new().run(None, &["run", "--provider", "gemini", "hi"]);
    bad.assert_code(2);
}

/// llama-server's "the request exceeds the available context size" is a prompt too long: the
/// conversation is compacted once (a call without tools writes the summary) and the call made
/// again, opening with the summary.
#[test]
fn a_full_context_is_compacted_and_the_call_made_again() {
    let read = |id: &str| Completion::tools(vec![call(id, "read_file", json!({"path": "a.txt"}))]);
    let server = OpenAiServer::start(vec![
        read("call_1").into(),
        read("call_2").into(),
        Reply::error(
            400,
            "exceed_context_size_error",
            "the request exceeds the available context size, try increasing it",
        ),
        Completion::text("The user asked to read a.txt twice; it says hello.").into(),
        Completion::text("done").into(),
    ]);
    let corral = corral_for(&server);
    corral.write("a.txt", "hello\n");
    let out = run(&corral, &["--json"], "read a.txt twice");
    out.assert_code(0);
    server.assert_clean();
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 5);
    assert!(bodies[3].get("tools").is_none(), "{}", bodies[3]);
    let retried = bodies[4]["messages"].to_string();
    assert!(retried.contains("<conversation-summary>"), "{retried}");
    assert!(retried.contains("it says hello"), "{retried}");
    assert!(
        out.events()
            .iter()
            .any(|e| e["type"] == "compacted" && e["reason"] == "prompt_too_long")
    );
}
