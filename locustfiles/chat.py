"""Streaming chat completions in a closed loop: one request after another per user.

    locust -f locustfiles/chat.py --headless --host http://127.0.0.1:8000 -u 32 -r 8 -t 60s \
           --max-tokens 256 --llm-json results.json
"""

from llm_locust import LLMUser


class ChatUser(LLMUser):
    """Sends --system-prompt / --prompt (or --prompt-file) with --max-tokens."""
