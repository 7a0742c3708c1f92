#!/usr/bin/env python3
"""The seed's agent loop (learn-claude-code s08, background tasks), rebuilt for the benchmarks.

The seed uses the `anthropic` SDK; this machine's python3 has no `anthropic` package, so the
one call it makes (`client.messages.create`, a whole JSON answer, no streaming) is made here
with the standard library's `http.client` and `json`. Everything else is the seed's: the same
six tools (bash, read_file, write_file, edit_file, background_run, check_background), the
background manager with its notification queue drained before each call, and the loop that
appends the answer and the tool results to `messages` and sends the whole history again.

It is lighter than the seed with the SDK (no pydantic models built from each answer, no httpx),
so corral's advantage over it is, if anything, understated.

Usage: ANTHROPIC_BASE_URL=http://127.0.0.1:PORT MODEL_ID=... seed_loop.py PROMPT
Runs one prompt to the end of its turn and exits (the seed reads prompts from a terminal).
"""

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.parse
import uuid
from pathlib import Path

WORKDIR = Path.cwd()
MODEL = os.environ.get("MODEL_ID", "claude-sonnet-4-5")
BASE = urllib.parse.urlsplit(os.environ.get("ANTHROPIC_BASE_URL", "https://api.anthropic.com"))
API_KEY = os.environ.get("ANTHROPIC_API_KEY", "")
SYSTEM = f"You are a coding agent at {WORKDIR}. Use background_run for long-running commands."


class Messages:
    """`client.messages` of the SDK: one keep-alive connection, `create` posts and parses."""

    def __init__(self):
        cls = http.client.HTTPSConnection if BASE.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(BASE.hostname, BASE.port)

    def create(self, **body):
        data = json.dumps(body)
        headers = {
            "content-type": "application/json",
            "x-api-key": API_KEY,
            "anthropic-version": "2023-06-01",
        }
        self.conn.request("POST", BASE.path.rstrip("/") + "/v1/messages", data, headers)
        response = self.conn.getresponse()
        text = response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {text[:500]!r}")
        return json.loads(text)


class Client:
    def __init__(self):
        self.messages = Messages()


client = Client()


class BackgroundManager:
    def __init__(self):
        self.tasks = {}
        self._notification_queue = []
        self._lock = threading.Lock()

    def run(self, command: str) -> str:
        task_id = str(uuid.uuid4())[:8]
        self.tasks[task_id] = {"status": "running", "result": None, "command": command}
        thread = threading.Thread(target=self._execute, args=(task_id, command), daemon=True)
        thread.start()
        return f"Background task {task_id} started: {command[:80]}"

    def _execute(self, task_id: str, command: str):
        try:
            r = subprocess.run(command, shell=True, cwd=WORKDIR, capture_output=True,
                               text=True, timeout=300)
            output = (r.stdout + r.stderr).strip()[:50000]
            status = "completed"
        except subprocess.TimeoutExpired:
            output = "Error: Timeout (300s)"
            status = "timeout"
        except Exception as e:
            output = f"Error: {e}"
            status = "error"
        self.tasks[task_id]["status"] = status
        self.tasks[task_id]["result"] = output or "(no output)"
        with self._lock:
            self._notification_queue.append({
                "task_id": task_id, "status": status, "command": command[:80],
                "result": (output or "(no output)")[:500]})

    def check(self, task_id: str = None) -> str:
        if task_id:
            t = self.tasks.get(task_id)
            if not t:
                return f"Error: Unknown task {task_id}"
            return f"[{t['status']}] {t['command'][:60]}\n{t.get('result') or '(running)'}"
        lines = [f"{tid}: [{t['status']}] {t['command'][:60]}" for tid, t in self.tasks.items()]
        return "\n".join(lines) if lines else "No background tasks."

    def drain_notifications(self) -> list:
        with self._lock:
            notifs = list(self._notification_queue)
            self._notification_queue.clear()
        return notifs


BG = BackgroundManager()


def safe_path(p: str) -> Path:
    path = (WORKDIR / p).resolve()
    if not path.is_relative_to(WORKDIR):
        raise ValueError(f"Path escapes workspace: {p}")
    return path


def run_bash(command: str) -> str:
    dangerous = ["rm -rf /", "sudo", "shutdown", "reboot", "> /dev/"]
    if any(d in command for d in dangerous):
        return "Error: Dangerous command blocked"
    try:
        r = subprocess.run(command, shell=True, cwd=WORKDIR, capture_output=True, text=True,
                           timeout=120)
        out = (r.stdout + r.stderr).strip()
        return out[:50000] if out else "(no output)"
    except subprocess.TimeoutExpired:
        return "Error: Timeout (120s)"


def run_read(path: str, limit: int = None) -> str:
    try:
        lines = safe_path(path).read_text().splitlines()
        if limit and limit < len(lines):
            lines = lines[:limit] + [f"... ({len(lines) - limit} more)"]
        return "\n".join(lines)[:50000]
    except Exception as e:
        return f"Error: {e}"


def run_write(path: str, content: str) -> str:
    try:
        fp = safe_path(path)
        fp.parent.mkdir(parents=True, exist_ok=True)
        fp.write_text(content)
        return f"Wrote {len(content)} bytes"
    except Exception as e:
        return f"Error: {e}"


def run_edit(path: str, old_text: str, new_text: str) -> str:
    try:
        fp = safe_path(path)
        c = fp.read_text()
        if old_text not in c:
            return f"Error: Text not found in {path}"
        fp.write_text(c.replace(old_text, new_text, 1))
        return f"Edited {path}"
    except Exception as e:
        return f"Error: {e}"


TOOL_HANDLERS = {
    "bash": lambda **kw: run_bash(kw["command"]),
    "read_file": lambda **kw: run_read(kw["path"], kw.get("limit")),
    "write_file": lambda **kw: run_write(kw["path"], kw["content"]),
    "edit_file": lambda **kw: run_edit(kw["path"], kw["old_text"], kw["new_text"]),
    "background_run": lambda **kw: BG.run(kw["command"]),
    "check_background": lambda **kw: BG.check(kw.get("task_id")),
}

TOOLS = [
    {"name": "bash", "description": "Run a shell command (blocking).",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                      "required": ["command"]}},
    {"name": "read_file", "description": "Read file contents.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"},
                                                       "limit": {"type": "integer"}},
                      "required": ["path"]}},
    {"name": "write_file", "description": "Write content to file.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"},
                                                       "content": {"type": "string"}},
                      "required": ["path", "content"]}},
    {"name": "edit_file", "description": "Replace exact text in file.",
     "input_schema": {"type": "object", "properties": {"path": {"type": "string"},
                                                       "old_text": {"type": "string"},
                                                       "new_text": {"type": "string"}},
                      "required": ["path", "old_text", "new_text"]}},
    {"name": "background_run",
     "description": "Run command in background thread. Returns task_id immediately.",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                      "required": ["command"]}},
    {"name": "check_background",
     "description": "Check background task status. Omit task_id to list all.",
     "input_schema": {"type": "object", "properties": {"task_id": {"type": "string"}}}},
]


def agent_loop(messages: list):
    while True:
        notifs = BG.drain_notifications()
        if notifs and messages:
            notif_text = "\n".join(f"[bg:{n['task_id']}] {n['status']}: {n['result']}"
                                   for n in notifs)
            messages.append({"role": "user",
                             "content": f"<background-results>\n{notif_text}\n"
                                        f"</background-results>"})
            messages.append({"role": "assistant", "content": "Noted background results."})
        response = client.messages.create(model=MODEL, system=SYSTEM, messages=messages,
                                          tools=TOOLS, max_tokens=8000)
        messages.append({"role": "assistant", "content": response["content"]})
        if response["stop_reason"] != "tool_use":
            return
        results = []
        for block in response["content"]:
            if block["type"] == "tool_use":
                handler = TOOL_HANDLERS.get(block["name"])
                try:
                    output = handler(**block["input"]) if handler else f"Unknown tool: {block['name']}"
                except Exception as e:
                    output = f"Error: {e}"
                print(f"> {block['name']}: {str(output)[:200]}")
                results.append({"type": "tool_result", "tool_use_id": block["id"],
                                "content": str(output)})
        messages.append({"role": "user", "content": results})


if __name__ == "__main__":
    # As a list of blocks (the seed sends the string; the API takes both, the scripted server's
    # rules only blocks).
    history = [{"role": "user", "content": [{"type": "text", "text": " ".join(sys.argv[1:])}]}]
    agent_loop(history)
    final = history[-1]["content"]
    if isinstance(final, list):
        for block in final:
            if block.get("type") == "text":
                print(block["text"])
