"""Bad input from the OpenAPI schema: schemathesis generates requests for every operation (bounded: a few
examples each), sent with a valid lender token to the real app over the real chain and mirror. No answer is
a 5xx, and every 4xx has a JSON body naming the problem."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from api_support import Api
from hypothesis import HealthCheck, Phase, given, settings

pytestmark = pytest.mark.slow


def test_no_operation_answers_5xx_and_every_4xx_names_the_problem(api: Api) -> None:
    app = api.http.app
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {api.tokens['bank']}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 25

    for operation in operations:

        @settings(
            max_examples=4,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],  # report, do not spend minutes shrinking
        )
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            try:
                response = case.call(headers=headers)
            except Exception as exc:  # the in-process client re-raises what the app let escape: a 500
                failures.append(f"{case.method} {case.formatted_path} -> 500: {exc!r}"[:400])
                return
            where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
            if response.status_code >= 500:
                failures.append(where)
            elif response.status_code >= 400:
                body = response.json()
                if not (isinstance(body, dict) and body.get("error") and body.get("message")):
                    failures.append(where)

        check()
    assert failures == []
