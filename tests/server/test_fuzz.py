"""Every operation of the API, fuzzed from its OpenAPI description (schemathesis and
hypothesis) against a real server: valid and invalid bodies, parameters and ids may get any
4xx, never a 5xx. Bounded and derandomised, so the run is short and repeatable."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from maskengine.engine.store import Project
from maskengine.masks import encode_rle

from .conftest import Server, make_project, run_server

EXAMPLES = 12  # per operation and pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    info = make_project(tmp_path_factory.mktemp("fuzz"))
    project = Project.open(info.root)
    # A reviewer may call every route but the admin's (starting a round would train).
    token = project.add_user("fuzzer", "reviewer")
    project.close()
    with run_server(Path(info.root)) as srv:
        m = np.zeros((480, 640), bool)
        m[10:50, 20:80] = True
        r = httpx.post(f"{srv.url}/api/images/1/masks", json={"counts": encode_rle(m)["counts"]},
                       headers={"Authorization": f"Bearer {info.token}"})
        assert r.status_code == 201, r.text  # mask 1 on image 1: records to hit by id
        yield srv, token


@pytest.mark.slow
def test_no_request_gets_a_server_error(server: tuple[Server, str]) -> None:
    srv, token = server
    schema = schemathesis.openapi.from_dict(httpx.get(f"{srv.url}/openapi.json").json())
    headers = {"Authorization": f"Bearer {token}"}
    errors: list[str] = []
    codes: Counter[int] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17

    # Data that fits the schema, data that does not, and fitting data on records that exist.
    passes = [(GenerationMode.POSITIVE, False), (GenerationMode.NEGATIVE, False),
              (GenerationMode.POSITIVE, True)]
    for operation, (mode, existing) in itertools.product(operations, passes):
        ids = {k: 1 for k in ("image_id", "mask_id") if existing and f"{{{k}}}" in operation.path}

        @given(case=operation.as_strategy(mode, path_parameters=ids or None))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.generate])
        def fuzz(case) -> None:  # noqa: ANN001 - a schemathesis Case
            response = case.call(base_url=srv.url, headers=headers, timeout=60)
            codes[response.status_code] += 1
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} -> "
                              f"{response.status_code}: {response.text[:200]}\n"
                              f"{case.as_curl_command()}")

        try:
            fuzz()
        except Unsatisfiable:  # nothing to get wrong (no parameters, no body)
            assert mode is GenerationMode.NEGATIVE, operation.path
    print(f"fuzzed {len(operations)} operations, {sum(codes.values())} requests: "
          f"{dict(sorted(codes.items()))}")
    assert errors == [], "\n".join(errors[:10])
