"""`agentstream bench model-server`: the benches' local model, run on its own as a tool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import openai

from agentstream.local.services import free_port


def test_the_model_server_answers_the_openai_client_and_stops_on_ctrl_c() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "agentstream.cli", "bench", "model-server"], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=os.environ | {"BENCH_MODEL_PORT": str(port), "AGENTSTREAM_ENV_FILE": "none"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # a parent ignoring Ctrl-C
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().startswith(f"OPENAI_BASE_URL=http://127.0.0.1:{port}/v1")
        client = openai.OpenAI(api_key="sk-local", base_url=f"http://127.0.0.1:{port}/v1", max_retries=0)
        resp = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "La ce oră închideți?"}])
        assert resp.choices[0].message.content == "[model] re: La ce oră închideți?"
        client.close()  # no keep-alive connection for the server's shutdown to wait on
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
