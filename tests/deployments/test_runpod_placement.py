"""At most one pod per flow run, ever: creation against a fake RunPod that creates the pod and
then answers 500 (or nothing), lists pods late, rate-limits, and runs out of a GPU type."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from smelt.deployments.runpod_api import PodSpec, RunPodClient, RunPodError
from smelt.deployments.runpod_placement import NoCapacity, PlacementPolicy, place_pod
from tests.deployments.fake_runpod import FakeRunPod, Fault
from tests.deployments.test_runpod_api import RecordedSleep

KEY = "rpa_PLACE_" + uuid.uuid4().hex
H100, H200, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA H200", "NVIDIA A100 80GB PCIe"


@pytest.fixture
def fake(tmp_path):
    server = FakeRunPod(KEY, tmp_path / "pods", images={"img:1": ["sleep", "30"]}).start()
    yield server
    server.stop()


def _spec(name: str = "smelt-runpod-run1") -> PodSpec:
    return PodSpec(name=name, image="img:1", gpu_type=H100, volume_gb=0)


def _place(fake, gpu_types, spec=None, exclude=frozenset(), policy=PlacementPolicy(), sleep=None):
    async def scenario():
        async with RunPodClient(KEY, fake.base_url, sleep=sleep or RecordedSleep()) as runpod:
            return await place_pod(
                runpod, spec or _spec(), gpu_types, exclude_ids=exclude, policy=policy
            )

    return asyncio.run(scenario())


@pytest.mark.parametrize("fault", ["500-after-create", "lost-answer"])
def test_a_pod_created_despite_an_error_is_adopted_not_duplicated(fake, fault):
    if fault == "500-after-create":
        fake.faults.append(Fault("POST", "/v2/pods", 500, after_effect=True))
    else:
        fake.faults.append(Fault("POST", "/v2/pods", drop=True))
    placement = _place(fake, [H100])
    assert placement.adopted
    assert len(fake.create_requests) == 1
    assert [pod.id for pod in fake.pods_named("smelt-runpod-run1")] == [placement.pod_id]


def test_a_pod_listed_late_is_still_found(fake):
    fake.list_lag_s = 1.0
    fake.faults.append(Fault("POST", "/v2/pods", 500, after_effect=True))
    policy = PlacementPolicy(lookups=8, lookup_interval_s=0.3)
    placement = _place(fake, [H100], policy=policy, sleep=asyncio.sleep)
    assert placement.adopted and len(fake.create_requests) == 1
    assert len(fake.pods_named("smelt-runpod-run1")) == 1


def test_a_create_is_tried_again_only_once_no_pod_of_that_name_exists(fake):
    fake.faults.append(Fault("POST", "/v2/pods", 503))  # refused before creating anything
    sleep = RecordedSleep()
    placement = _place(fake, [H100], sleep=sleep)
    assert not placement.adopted
    assert len(fake.create_requests) == 1  # the 503 never reached the create handler
    assert len(sleep.waits) == PlacementPolicy().lookups  # looked up before creating again
    assert len(fake.pods_named("smelt-runpod-run1")) == 1


def test_creates_that_keep_failing_give_up_with_no_pod(fake):
    fake.faults += [Fault("POST", "/v2/pods", 500) for _ in range(3)]
    with pytest.raises(RunPodError, match="3 creates"):
        _place(fake, [H100, H200])
    assert fake.pods == {}


def test_gpu_types_are_tried_in_order_until_one_places(fake):
    fake.capacity = {H100: 0, H200: 0}
    placement = _place(fake, [H100, H200, A100])
    assert placement.gpu_type == A100 and not placement.adopted
    assert [body["gpu"]["id"] for body in fake.create_requests] == [H100, H200, A100]
    assert fake.pods[placement.pod_id].request["gpu"]["id"] == A100


def test_no_capacity_names_every_gpu_type_tried(fake):
    fake.capacity = {H100: 0, H200: 0}
    with pytest.raises(NoCapacity) as info:
        _place(fake, [H100, H200])
    assert H100 in str(info.value) and H200 in str(info.value)
    assert "fallback_gpu_types" in str(info.value)
    assert fake.pods == {}


def test_no_balance_stops_at_once(fake):
    fake.balance = False
    with pytest.raises(RunPodError) as info:
        _place(fake, [H100, H200])
    assert info.value.status == 402 and len(fake.create_requests) == 1


def test_hosts_outside_the_allowed_cuda_versions_are_not_used(fake):
    fake.host_cuda = "12.4"
    spec = PodSpec(name="smelt-runpod-cuda", image="img:1", gpu_type=H100, volume_gb=0)
    strict = PodSpec(**{**spec.__dict__, "allowed_cuda_versions": ("12.6", "12.8")})
    with pytest.raises(NoCapacity, match="CUDA"):
        _place(fake, [H100], spec=strict)
    fake.host_cuda = "12.8"
    assert _place(fake, [H100], spec=strict).pod_id


def test_an_existing_pod_is_adopted_and_younger_duplicates_terminated(fake):
    first = fake.create(_spec().to_json())
    second = fake.create(_spec().to_json())
    placement = _place(fake, [H100])
    assert placement.adopted and placement.pod_id == first.id
    assert fake.terminations == [second.id] and fake.create_requests == []


def test_a_lost_pod_is_never_adopted_by_its_replacement(fake):
    lost = fake.create(_spec().to_json())
    placement = _place(fake, [H100], exclude=frozenset({lost.id}))
    assert not placement.adopted and placement.pod_id != lost.id


def test_random_errors_and_rate_limits_never_make_two_pods_of_a_run(fake):
    fake.random.seed(7)
    fake.chaos_rate = 0.4
    placed = []
    for run in range(12):
        # an unlucky run may give up; it must still leave at most one pod
        with contextlib.suppress(RunPodError):
            placed.append(_place(fake, [H100], spec=_spec(f"smelt-runpod-run{run}")))
    statuses = {status for _, _, status in fake.requests}
    assert {429, 500} <= statuses and placed
    for run in range(12):
        assert len(fake.pods_named(f"smelt-runpod-run{run}")) <= 1
    for placement in placed:
        assert fake.pods[placement.pod_id].terminated_at is None
