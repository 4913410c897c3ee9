"""What the worker refuses before creating a pod, each refusal naming the setting and the fix:
an API URL pods cannot reach, credentials in plain text, an s3:// run without S3 credentials,
an image nobody can pull (asked of a real local registry over HTTP)."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from smelt.deployments import registry_probe
from smelt.deployments.registry_probe import Access, ImageRef, anonymous_access
from smelt.deployments.runpod_api import RunPodClient
from smelt.deployments.runpod_job import RunPodJobConfiguration, secret_ref
from smelt.deployments.runpod_preflight import (
    PodConfigError,
    api_url_problem,
    check_pod_config,
    is_sensitive,
    plain_credentials_problem,
    s3_credentials_problem,
)
from tests.deployments.fake_registry import FakeRegistry
from tests.deployments.fake_runpod import FakeRunPod

KEY = "rpa_PRE_" + uuid.uuid4().hex
S3_SECRETS = {
    "AWS_ACCESS_KEY_ID": secret_ref("aws_key_id"),
    "AWS_SECRET_ACCESS_KEY": secret_ref("aws_secret"),
}


@pytest.fixture(scope="module")
def registry():
    server = FakeRegistry(
        public={"team/smelt": {"0.1"}, "library/ubuntu": {"latest"}},
        private={"team/secret-smelt": {"0.1"}},
    ).start()
    yield server
    server.stop()


@pytest.fixture
def fake(tmp_path):
    server = FakeRunPod(KEY, tmp_path / "pods", registries={"reg1": "ghcr"}).start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:4200/api",
        "http://localhost:4200/api",
        "http://10.1.2.3/api",
        "http://192.168.0.8:4200/api",
        "http://172.20.0.1/api",
        "http://169.254.1.1/api",
        "http://[::1]:4200/api",
        "http://0.0.0.0:4200/api",
    ],
)
def test_loopback_and_private_api_urls_are_refused_for_pods(url):
    problem = asyncio.run(api_url_problem(url, allow_private=False))
    assert problem and url in problem and "allow_private_api_url" in problem
    assert asyncio.run(api_url_problem(url, allow_private=True)) is None


def test_public_api_urls_pass_and_a_missing_one_is_refused():
    assert asyncio.run(api_url_problem("https://8.8.8.8/api", allow_private=False)) is None
    assert "PREFECT_API_URL" in asyncio.run(api_url_problem(None, allow_private=False))


def test_credentials_must_come_from_runpod_secrets():
    assert is_sensitive("AWS_SECRET_ACCESS_KEY") and is_sensitive("HF_TOKEN")
    assert is_sensitive("PREFECT_API_KEY") and is_sensitive("PREFECT_API_AUTH_STRING")
    assert not is_sensitive("TOKENIZERS_PARALLELISM") and not is_sensitive("AWS_REGION")
    env = {"AWS_SECRET_ACCESS_KEY": "plain-value", "PREFECT_API_KEY": "pnu_x", "LANG": "C"}
    problem = plain_credentials_problem(env)
    assert "AWS_SECRET_ACCESS_KEY" in problem and "PREFECT_API_KEY" in problem
    assert "plain-value" not in problem and "`secrets`" in problem
    assert plain_credentials_problem({**S3_SECRETS, "LANG": "C"}) is None


def test_s3_runs_need_s3_credentials_in_the_pod(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    params = {"config": {"shards": "s3://bucket/shards", "output": "s3://bucket/runs/r1"}}
    problem = s3_credentials_problem(params, {})
    assert "AWS_ACCESS_KEY_ID" in problem and "aws_secret_access_key" in problem
    assert "profile" not in problem
    assert s3_credentials_problem(params, S3_SECRETS) is None
    assert s3_credentials_problem({"config": {"output": "/local/run"}}, {}) is None
    assert s3_credentials_problem({"shards": ["s3://b/a=0.5"]}, {}) is not None
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert "AWS profile in ~/.aws is not forwarded" in s3_credentials_problem(params, {})


@pytest.mark.parametrize(
    "image, expected",
    [
        ("ubuntu", ImageRef("docker.io", "library/ubuntu", "latest")),
        ("team/smelt:0.1", ImageRef("docker.io", "team/smelt", "0.1")),
        ("ghcr.io/team/smelt:0.1", ImageRef("ghcr.io", "team/smelt", "0.1")),
        ("localhost:5000/smelt", ImageRef("localhost:5000", "smelt", "latest")),
        ("reg.example.org:443/a/b@sha256:ab", ImageRef("reg.example.org:443", "a/b", "sha256:ab")),
    ],
)
def test_image_references_are_parsed_as_docker_does(image, expected):
    assert ImageRef.parse(image) == expected


def test_the_registry_says_which_images_pull_anonymously(registry):
    def access(image: str) -> Access:
        return asyncio.run(anonymous_access(f"{registry.host}/{image}", timeout_s=5))[0]

    assert access("team/smelt:0.1") is Access.PUBLIC
    assert access("team/secret-smelt:0.1") is Access.NEEDS_CREDENTIALS
    assert access("team/smelt:0.2") is Access.NOT_FOUND
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert asyncio.run(anonymous_access(f"127.0.0.1:{closed}/x:1", 5))[0] is Access.UNKNOWN


def _check(fake, config, env, parameters=None, probe=registry_probe.anonymous_access):
    async def scenario():
        async with RunPodClient(KEY, fake.base_url) as runpod:
            await check_pod_config(config, env, parameters or {}, runpod, probe=probe)

    asyncio.run(scenario())


def test_an_image_that_cannot_be_pulled_is_refused_before_any_pod(fake, registry):
    env = {"PREFECT_API_URL": "https://8.8.8.8/api"}
    private = RunPodJobConfiguration(image=f"{registry.host}/team/secret-smelt:0.1")
    with pytest.raises(PodConfigError, match="registry_auth_id"):
        _check(fake, private, env)
    _check(fake, RunPodJobConfiguration(image=private.image, registry_auth_id="reg1"), env)
    unknown_id = RunPodJobConfiguration(image=private.image, registry_auth_id="reg-nope")
    with pytest.raises(PodConfigError, match="reg-nope"):
        _check(fake, unknown_id, env)
    _check(fake, RunPodJobConfiguration(image=f"{registry.host}/team/smelt:0.1"), env)
    assert fake.create_requests == []


def test_an_unreachable_registry_is_a_warning_not_a_refusal(fake):
    async def unreachable(image: str):
        return Access.UNKNOWN, "registry not reachable (ConnectError)"

    env = {"PREFECT_API_URL": "https://8.8.8.8/api"}
    _check(fake, RunPodJobConfiguration(image="ghcr.io/team/smelt:0.1"), env, probe=unreachable)


def test_every_problem_is_named_in_one_refusal(fake, registry):
    config = RunPodJobConfiguration(image=f"{registry.host}/team/secret-smelt:0.1")
    env = {"PREFECT_API_URL": "http://127.0.0.1:4200/api", "HF_TOKEN": "hf_plain"}
    with pytest.raises(PodConfigError) as info:
        _check(fake, config, env, {"config": {"output": "s3://bucket/run"}})
    message = str(info.value)
    for fix in ("allow_private_api_url", "HF_TOKEN", "AWS_ACCESS_KEY_ID", "registry_auth_id"):
        assert fix in message
    assert "hf_plain" not in message
