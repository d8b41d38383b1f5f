"""Requests refused by size: N anonymous clients each POST a 40 MB body to the widget's
queue route (`/gradio_api/queue/join`) of a real `chatbot serve` (uvicorn, the whole
app: body limit, Origin check, session, route guard, three Gradio pages; tiny models,
which the refused requests never reach), at once, in rounds. Half the bodies declare
their length, half are sent chunked (no length). Measured: the share refused (413) with
its 95% bootstrap interval (413, or the connection closed before the answer could be
read; "None" in the statuses), the time to the refusal, and the server's resident memory
before and after (the issue's finding: 500 MB grown and kept).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/body_limits.py               # 4 parallel x 5 rounds
    PYTHONPATH=$PWD .venv/bin/python benchmarks/body_limits.py --parallel 8 --rounds 3 --no-save

Saves benchmarks/results/body_limits.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.results_file import save_results  # noqa: E402
from chatbot.evaluation.intervals import interval  # noqa: E402

BODY_MB = 40
CHUNK = 1 << 20


def rss_mb(pid: int) -> float:
    """Resident memory of the process `pid` (Linux /proc), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.tiny_models import build_tiny_embedder, build_tiny_reply_model

    embedder = build_tiny_embedder(home / "embedder")
    reply = build_tiny_reply_model(home / "reply-model")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATBOT_")}
    env.update(
        CHATBOT_HOME=str(home / "data"),
        CHATBOT_EMBEDDER_PATH=str(embedder),
        CHATBOT_REPLY_MODEL_PATH=str(reply),
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(REPO),
    )
    subprocess.run([sys.executable, "-m", "chatbot", "db", "upgrade"], env=env, check=True)
    port = free_port()
    log = (home / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "chatbot", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError((home / "serve.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("chatbot serve did not start within 300 s")


async def post_big(port: int, chunked: bool) -> tuple[int | None, float, int]:
    """One 40 MB POST over a raw socket: (HTTP status or None, seconds to the answer,
    bytes the server let us send before it answered or closed)."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = (
        "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {BODY_MB * CHUNK}\r\n"
    )
    writer.write(
        (
            "POST /gradio_api/queue/join HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n"
        ).encode()
    )
    sent = 0
    status: int | None = None
    answer = asyncio.ensure_future(reader.readline())
    try:
        for _ in range(BODY_MB):
            if answer.done():
                break
            piece = b"x" * CHUNK
            writer.write(f"{CHUNK:x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await asyncio.wait_for(writer.drain(), timeout=10)
            sent += CHUNK
        line = await asyncio.wait_for(answer, timeout=30)
        if line.startswith(b"HTTP/1.1 "):
            status = int(line.split()[1])
    except (ConnectionError, TimeoutError):
        if answer.done() and not answer.cancelled() and answer.exception() is None:
            line = answer.result()
            if line.startswith(b"HTTP/1.1 "):
                status = int(line.split()[1])
    finally:
        writer.close()
    return status, time.monotonic() - started, sent


async def run_rounds(port: int, parallel: int, rounds: int) -> list[tuple[int | None, float, int]]:
    results = []
    for _ in range(rounds):
        batch = [post_big(port, chunked=i % 2 == 1) for i in range(parallel)]
        results.extend(await asyncio.gather(*batch))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="body-limits-") as tmp:
        process, url = start_server(Path(tmp))
        port = int(url.rsplit(":", 1)[1])
        try:
            before = rss_mb(process.pid)
            results = asyncio.run(run_rounds(port, args.parallel, args.rounds))
            time.sleep(1.0)
            after = rss_mb(process.pid)
            healthy = urllib.request.urlopen(url + "/healthz", timeout=5).status == 200
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    # Refused: a 413, or the connection closed by the server before its answer could be
    # read (the client was still writing); never a 2xx.
    refused = np.array([1.0 if status in (413, None) else 0.0 for status, _, _ in results])
    rng = np.random.default_rng(0)
    samples = [rng.choice(refused, refused.size).mean() for _ in range(2000)]
    seconds = sorted(t for _, t, _ in results)
    figures = {
        "requests": len(results),
        "body_mb": BODY_MB,
        "parallel": args.parallel,
        "rounds": args.rounds,
        "refused": interval(float(refused.mean()), samples),
        "statuses": {
            str(k): sum(1 for status, _, _ in results if str(status) == str(k))
            for k in sorted({str(status) for status, _, _ in results})
        },
        "median_seconds_to_refusal": round(seconds[len(seconds) // 2], 4),
        "max_mb_sent_before_refusal": round(max(s for _, _, s in results) / CHUNK, 1),
        "server_rss_mb": {
            "before": round(before, 1),
            "after": round(after, 1),
            "growth": round(after - before, 1),
        },
        "server_healthy_after": healthy,
        "note": "the client writes 1 MB pieces; a refused connection stops taking them, so "
        "'sent' counts what the kernel buffers accepted, not what the app read",
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    if not args.no_save:
        save_results(REPO / "benchmarks" / "results" / "body_limits.json", figures)


if __name__ == "__main__":
    main()
