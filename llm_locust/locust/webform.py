"""The start form of Locust's web UI: which options it may set, and what it shows of the key.

Locust's ``POST /swarm`` copies every form field whose name is a parsed option into the options,
shown in the form or not: a hand-made request could set ``--prompt-file /etc/shadow`` (every
worker reads the file and sends it to a host of the requester's choosing), a report path (a file
overwritten) or one of Locust's own file options (``html_file``, ``csv_prefix``, ``logfile``, ...).
:func:`install` refuses such a request before Locust sees it: a field may only name what the form
shows (Locust's own fields and the options with ``include_in_web_ui``; llm-locust's options that
name files are not among them, see :data:`llm_locust.locust.options.STARTUP_ONLY`). The answer is
Locust's own error shape, so the form shows the message.

The key: the form shows a placeholder instead of the start-up key, and its help says where that
key goes (see :mod:`llm_locust.locust.keys`); a request without the field means the start-up key too, so
a key the form gave one test is never reused for another host by a later request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request

from llm_locust.locust.keys import SECRET_PLACEHOLDER
from llm_locust.locust.options import STARTUP_ONLY
from llm_locust.locust.workload_options import FILE_SOURCES

if TYPE_CHECKING:
    from llm_locust.locust.state import LLMState

logger = logging.getLogger("llm_locust")

#: The fields Locust's form posts besides the options it shows (locust 2.47, web.py ``swarm``).
LOCUST_FORM_FIELDS = frozenset(
    {"user_count", "spawn_rate", "host", "run_time", "user_classes", "shape_class", "profile"}
)


def refused(form_fields: list[str], options: Any, shown: frozenset[str]) -> list[str]:
    """The fields that would set an option the form does not show, in form order."""
    parsed = vars(options) if options is not None else {}
    return [f for f in form_fields if f in parsed and f not in shown and f not in LOCUST_FORM_FIELDS]


def file_dataset_refusal(form: Any, options: Any) -> str:
    """Why the form may not set this ``--dataset`` ("" when it may): a source that reads a file
    (jsonl:PATH, sharegpt:PATH) is start-up only, like every option that names a file; the form may
    keep the start-up value or choose one that reads none."""
    value = str(form.get("dataset", "") or "")
    source = value.split(":", 1)[0]
    if source not in FILE_SOURCES or value == str(getattr(options, "dataset", "") or ""):
        return ""
    return (
        f"The web UI cannot set --dataset {source}:PATH (it names a file on the machines): give it when "
        "starting Locust (command line, environment or config file), or choose prompt, seed or synthetic."
    )


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def refusal_message(fields: list[str]) -> str:
    reasons = []
    for dest in fields:
        why = STARTUP_ONLY.get(_flag(dest), "the form does not show it")
        reasons.append(f"{_flag(dest)} ({why})")
    return (
        f"The web UI cannot set {', '.join(reasons)}: give it when starting Locust (command line, "
        "environment or config file)."
    )


def _shown_options() -> frozenset[str]:
    """The options the form shows (what Locust renders into it)."""
    from locust.argument_parser import ui_extra_args_dict

    return frozenset(ui_extra_args_dict())


def install(environment: Any, state: LLMState) -> None:
    """Guard ``POST <base>/swarm`` and hide the key in the form (call once, from ``init``)."""
    web_ui = environment.web_ui
    options = environment.parsed_options
    base = (getattr(options, "web_base_path", None) or "").rstrip("/")
    swarm_path = f"{base}/swarm"
    shown: list[frozenset[str]] = []

    def guard_swarm() -> Response | None:
        if request.path != swarm_path or request.method != "POST":
            return None
        if not shown:
            shown.append(_shown_options())
        bad = refused(list(request.form.keys()), environment.parsed_options, shown[0])
        message = (
            refusal_message(bad) if bad else file_dataset_refusal(request.form, environment.parsed_options)
        )
        if message:
            logger.warning("web UI: %s", message)
            return jsonify({"success": False, "message": message, "host": environment.host})
        parsed = environment.parsed_options
        if parsed is not None and "api_key" not in request.form and hasattr(parsed, "api_key"):
            parsed.api_key = SECRET_PLACEHOLDER  # no key in the request: the start-up key's rules apply
        return None

    web_ui.app.before_request(guard_swarm)
    original = web_ui.update_template_args

    def update_template_args() -> None:
        """Locust renders option defaults, secrets included, into the page: show a placeholder, and
        say in the field's help where the start-up key goes."""
        original()
        extra = web_ui.template_args.get("extra_options", {})
        option = extra.get("api_key")
        if option is None:
            return
        binding = state.key_binding
        help_text = "The API key (default: $OPENAI_API_KEY)."
        if binding is not None and binding.key:
            where = binding.host or "the --host given at start-up (none was: it is not sent)"
            help_text = (
                f"Leave as it is to use the key given at start-up: it is only sent to {where}. "
                "For another host, enter that host's key here (or none)."
            )
        shown_value = SECRET_PLACEHOLDER if option.get("default_value") or (binding and binding.key) else ""
        extra["api_key"] = {**option, "default_value": shown_value, "help_text": help_text}

    web_ui.update_template_args = update_template_args
