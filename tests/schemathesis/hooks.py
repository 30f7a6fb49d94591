"""What the schemathesis run of the test suite (tests/it/schemathesis.rs) checks beside its own
checks: every error questlog answers is problem+json with a stable code, and no answer is a fault.

Loaded through SCHEMATHESIS_HOOKS.
"""

import json
import re

import schemathesis

# The contract's answers that ask a client to retry: a read-your-writes wait that ran out
# (`min_position` beyond what the read models have applied), an outage, a request that took too
# long. Every other 5xx is a fault.
RETRY_LATER = {504: {"not_caught_up"}, 503: {"unavailable", "timeout"}}

# Answered by the HTTP server itself, before questlog sees the request (docs/API.md, "Errors").
WITHOUT_BODY = {414, 431}

CODE = re.compile(r"^[a-z][a-z0-9_]*$")


@schemathesis.check
def problem_with_a_stable_code(ctx, response, case):
    """An error is problem+json with a snake_case `code`, its `type` and `status`; a 5xx only
    when the contract asks the client to retry."""
    status = response.status_code
    if status < 400 or status in WITHOUT_BODY:
        return None
    content_type = ";".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(f"{status} answered as {content_type!r}, not problem+json")
    problem = json.loads(response.content)
    code = problem.get("code")
    if not isinstance(code, str) or not CODE.match(code):
        raise AssertionError(f"{status} without a stable code: {problem}")
    if problem.get("status") != status:
        raise AssertionError(f"{status} whose problem says status {problem.get('status')}")
    if problem.get("type") != f"https://questlog.dev/problems/{code}":
        raise AssertionError(f"{status} {code} with type {problem.get('type')!r}")
    if status >= 500 and code not in RETRY_LATER.get(status, set()):
        raise AssertionError(f"a fault: {status} {code}: {problem.get('detail')}")
    return None


@schemathesis.hook
def map_query(context, query):
    """A read asked to wait for a position beyond the log waits the run's time away (5 s by
    default, up to 30 s): such a read waits 0.2 s at most here, and still answers 504."""
    if query and "min_position" in query:
        query["wait_ms"] = 200
    return query
