"""docker/: no Docker engine runs here, so check what can be checked: files parse, commands are
accepted by the real parsers, ports and names agree between the pieces."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from conftest import ROOT

from llm_locust.cli import _parser as mock_cli_parser
from llm_locust.locust.options import add_arguments

DOCKER = ROOT / "docker"


def locust_parse(args: list[str]) -> Any:
    """Parse a locust command line with Locust's parser plus our options (SystemExit if invalid)."""
    from locust.argument_parser import get_parser

    parser = get_parser(default_config_files=[])
    add_arguments(parser)
    return parser.parse_args(args)


def test_dockerfile_runs_locust_as_non_root_with_the_package_and_locustfiles() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    lines = [ln.split() for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert ["USER", "locust"] in lines
    assert 'ENTRYPOINT ["locust"]' in text
    assert {"8089", "5557"} <= {p for ln in lines if ln[0] == "EXPOSE" for p in ln[1:]}
    for ln in lines:
        if ln[0] == "COPY":
            for src in [s for s in ln[1:-1] if not s.startswith("--")]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_compose_services_agree_with_the_cli() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"master", "worker", "mock"} <= set(services)
    master, worker, mock = services["master"], services["worker"], services["mock"]
    assert "8089:8089" in master["ports"]
    m = locust_parse(
        [a.replace("${LLM_HOST:-http://mock:8000}", "http://mock:8000") for a in master["command"]]
    )
    assert m.master and m.host == "http://mock:8000" and (ROOT / m.locustfile).exists()
    w = locust_parse(worker["command"])
    assert w.worker and w.master_host == "master" and "master" in services
    assert "ports" not in worker  # workers scale: no fixed host ports
    assert mock["entrypoint"] == ["llm-locust", "mock"]
    mock_args = mock_cli_parser().parse_args(["mock", *mock["command"]])
    assert mock_args.port == 8000 and mock_args.host == "0.0.0.0"


def k8s_docs() -> list[dict[str, Any]]:
    return [
        d for f in sorted((DOCKER / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]


def test_kubernetes_manifests_agree() -> None:
    docs = k8s_docs()
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = by_kind[("Service", "llm-locust-master")]
    assert {p["port"] for p in service["spec"]["ports"]} == {8089, 5557}
    config = by_kind[("ConfigMap", "llm-locust")]["data"]
    compile(config["locustfile.py"], "locustfile.py", "exec")
    assert "LLMUser" in config["locustfile.py"]
    conf_args = []
    for line in config["locust.conf"].splitlines():
        key, _, value = line.partition("=")
        conf_args += [f"--{key.strip()}", value.strip()]
    locust_parse(conf_args)  # every key of locust.conf is a real option
    for name, flag in (("llm-locust-master", "--master"), ("llm-locust-worker", "--worker")):
        pod = by_kind[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        args = locust_parse([a.replace("/config/locust.conf", "/dev/null") for a in container["args"]])
        assert getattr(args, flag.strip("-"))
        if flag == "--worker":
            assert args.master_host == service["metadata"]["name"]
        assert pod["volumes"][0]["configMap"]["name"] == "llm-locust"


def test_only_the_worker_pods_reach_the_master_port() -> None:
    """The master port carries the options, the API key included, in clear text (README, Security)."""
    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in k8s_docs()}
    policy = by_kind[("NetworkPolicy", "llm-locust-master")]["spec"]
    master = by_kind[("Deployment", "llm-locust-master")]["spec"]["template"]["metadata"]["labels"]
    worker = by_kind[("Deployment", "llm-locust-worker")]["spec"]["template"]["metadata"]["labels"]
    assert policy["podSelector"]["matchLabels"] == master and policy["policyTypes"] == ["Ingress"]
    rules = {port["port"]: rule.get("from") for rule in policy["ingress"] for port in rule["ports"]}
    assert rules[5557] == [{"podSelector": {"matchLabels": worker}}]
    assert set(rules) == {5557, 8089}


@pytest.mark.parametrize(
    "path",
    ["compose.yaml", "k8s/master.yaml", "k8s/worker.yaml", "k8s/configmap.yaml", "k8s/networkpolicy.yaml"],
)
def test_yaml_parses(path: str) -> None:
    assert list(yaml.safe_load_all((DOCKER / path).read_text()))
