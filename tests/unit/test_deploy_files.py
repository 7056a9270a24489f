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
        if ln[0] == "COPY" and not any(a.startswith("--from=") for a in ln):
            for src in [s for s in ln[1:-1] if not s.startswith("--")]:
                assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's stages, each a list of its instructions (continuation lines joined)."""
    text = (DOCKER / "Dockerfile").read_text().replace("\\\n", " ")
    stages: list[list[str]] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_docker_image_gets_the_compiled_reader_from_a_builder_stage() -> None:
    """A builder with a C compiler makes the wheel (the build fails if the extension is missing); the
    final image installs that wheel without the compiler and imports the extension."""
    build, final = dockerfile_stages()
    assert build[0].split()[1:] == ["python:3.11-slim", "AS", "build"]
    assert any("apt-get install" in i and " gcc " in i for i in build)
    (wheel,) = [i for i in build if "pip wheel" in i]
    assert "/dist" in wheel and "llm_locust/_native/_speedups." in wheel
    assert not any("gcc" in i for i in final)
    assert "COPY --from=build /dist /dist" in final
    (install,) = [i for i in final if "pip install" in i]
    assert "/dist/llm_locust-*.whl" in install and "import llm_locust._native._speedups" in install


def test_dockerignore_keeps_local_outputs_out_of_the_build_context() -> None:
    import fnmatch

    patterns = [
        p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and p[0] != "#"
    ]

    def ignored(path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/")) for p in patterns)

    for path in [".venv", ".git", "build", "test-artifacts", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                 "llm_locust.egg-info"]:  # fmt: skip
        assert ignored(path), path
    assert any(p.endswith("*.so") for p in patterns)  # no host build of the extension in the image
    for stage in dockerfile_stages():
        for ins in stage:
            words = ins.split()
            if words[0] == "COPY" and not any(w.startswith("--from=") for w in words):
                for src in [w for w in words[1:-1] if not w.startswith("--")]:
                    assert not ignored(src), f".dockerignore drops {src}, which the Dockerfile copies"


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


# -- monitoring: Prometheus and Grafana behind the compose profile "monitoring" -------------------
def exported_sample_names() -> set[str]:
    """Every sample name our exposition can carry (the open loop's target rate included)."""
    from prometheus_client.parser import text_string_to_metric_families

    from llm_locust.reports import prometheus

    live = prometheus.Live(users=1, in_flight=0, target_requests_per_s=1.0)
    text = prometheus.text(prometheus.ZERO, live)
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def dashboard_exprs() -> list[str]:
    import json

    dash = json.loads((DOCKER / "grafana" / "dashboards" / "llm-locust.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]


def test_monitoring_services_sit_behind_their_profile_and_mount_files_that_exist() -> None:
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            assert (DOCKER / volume.split(":")[0]).exists(), volume
    for name in ("master", "worker"):
        assert "profiles" not in services[name]  # a plain `up` stays what it was


def test_prometheus_scrapes_the_masters_web_ui_route_and_the_engine() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    config = yaml.safe_load((DOCKER / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    ours = jobs["llm-locust"]
    assert ours["metrics_path"] == "/llm/metrics"  # the route webui's blueprint neighbours serve
    (target,) = ours["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services and f"{port}:{port}" in services[host]["ports"]
    assert "--master" in services[host]["command"]  # the merged numbers live on the master
    mount = services["prometheus"]["volumes"][0].split(":")
    assert mount[1] in services["prometheus"]["command"][0]  # the config file is the one mounted
    (engine,) = jobs["engine"]["static_configs"][0]["targets"]
    assert engine.split(":")[0] in services and jobs["engine"]["metrics_path"] == "/metrics"


def test_grafana_provisions_the_datasource_the_dashboard_names() -> None:
    import json

    prov = DOCKER / "grafana" / "provisioning"
    (source,) = yaml.safe_load((prov / "datasources" / "prometheus.yaml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    scrape = yaml.safe_load((DOCKER / "prometheus.yml").read_text())["global"]["scrape_interval"]
    assert source["jsonData"]["timeInterval"] == scrape
    (provider,) = yaml.safe_load((prov / "dashboards" / "llm-locust.yaml").read_text())["providers"]
    services = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    dash = json.loads((DOCKER / "grafana" / "dashboards" / "llm-locust.json").read_text())
    for p in dash["panels"]:
        assert p["datasource"]["uid"] == source["uid"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in p["targets"])


#: vLLM's own series the dashboard may query (vllm/v1/metrics/loggers.py), as Prometheus names them
VLLM_SERIES = {
    *(f"vllm:{h}_bucket" for h in ("time_to_first_token_seconds", "inter_token_latency_seconds",
                                   "request_time_per_output_token_seconds", "e2e_request_latency_seconds")),
    "vllm:prompt_tokens_total", "vllm:generation_tokens_total", "vllm:request_success_total",
    "vllm:num_requests_running", "vllm:num_requests_waiting",
}  # fmt: skip


def test_every_metric_the_dashboard_queries_is_ours_or_vllms() -> None:
    import re

    exported = exported_sample_names()
    queried: set[str] = set()
    for expr in dashboard_exprs():
        queried |= set(re.findall(r"\b(?:llm_locust|vllm):[a-zA-Z0-9_:]+", expr))
    ours = {m for m in queried if m.startswith("llm_locust:")}
    assert ours <= exported, ours - exported
    assert queried - ours <= VLLM_SERIES, queried - ours - VLLM_SERIES
    # every family we export is on the dashboard (test_info only labels the run)
    families = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in exported} - {"llm_locust:test_info"}
    on_dashboard = {re.sub(r"_(bucket|count|sum|total)$", "", n) for n in ours}
    assert families <= on_dashboard, families - on_dashboard


@pytest.mark.parametrize(
    "path",
    ["prometheus.yml", "grafana/provisioning/datasources/prometheus.yaml",
     "grafana/provisioning/dashboards/llm-locust.yaml"],
)  # fmt: skip
def test_monitoring_yaml_parses(path: str) -> None:
    assert yaml.safe_load((DOCKER / path).read_text())
