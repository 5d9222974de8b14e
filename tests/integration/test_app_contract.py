"""The application stand-in (tests/fake_app.py) against the documented API (docs/app-api.openapi.yml).

Every tested module talks to the stand-in, so a stand-in that drifts from the document makes the
suite prove the wrong thing. Each documented path, method and status is provoked on the stand-in
and its answer checked against the documented schema; every route the stand-in serves is
documented, and every key it answers with too."""

import ast
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

from fake_app import ADMIN_TOKEN, USER_TOKEN

REPO = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((REPO / "docs" / "app-api.openapi.yml").read_text())
STANDIN = REPO / "tests" / "fake_app.py"
METHODS = ("get", "post", "put", "patch", "delete")
ADMIN = {"Authorization": "Bearer " + ADMIN_TOKEN}
USER = {"Authorization": "Bearer " + USER_TOKEN}

# (path, method, documented status) -> the ways to get that answer from the stand-in:
# app: attributes set on the stand-in first; headers, body (JSON), query: the request.
SCENARIOS = {
    ("/admin/config/reload", "post", "200"): [dict(headers=ADMIN, body={"sections": ["Quality", "Database"]}),
                                              dict(headers=ADMIN)],
    ("/admin/config/reload", "post", "400"): [dict(headers=ADMIN, body={"sections": ["Billing"]})],
    ("/admin/config/reload", "post", "401"): [dict(body={}), dict(headers={"Authorization": "Bearer wrong"})],
    ("/admin/config/reload", "post", "403"): [dict(headers=USER, body={})],
    ("/health/ready", "get", "200"): [dict()],
    ("/health/ready", "get", "503"): [dict(app={"ready": False})],
    ("/admin/system-status", "get", "200"): [dict(headers=ADMIN)],
    ("/admin/system-status", "get", "401"): [dict()],
    ("/admin/system-status", "get", "403"): [dict(headers=USER)],
    ("/health/store-api", "get", "200"): [dict()],
    ("/health/store-api", "get", "503"): [dict(app={"breaker_open": True})],
    ("/health/operator-queue", "get", "200"): [dict(), dict(query={"max_waiting": "5"})],
    ("/health/operator-queue", "get", "503"): [dict(query={"max_waiting": "0"}, app={"operator_waiting": 3})],
    ("/health/operator-queue", "get", "400"): [dict(query={"max_waiting": "many"})],
    ("/metrics", "get", "200"): [dict()],
}


def documented_operations():
    return {(path, method): op for path, item in SPEC["paths"].items() for method, op in item.items()
            if method in METHODS}


# --------------------------------------------------------------------------- the schema subset
# The keywords the document uses. An unknown one fails the test instead of being skipped, so the
# checker never passes a document it does not understand.
KEYWORDS = {"type", "required", "properties", "items", "enum", "nullable", "$ref", "description"}


def json_schema(schema):
    """An OpenAPI 3.0 schema as JSON Schema: references resolved, nullable as a null type, and
    objects closed to keys the document does not name (a key only the stand-in has would let a
    test rely on what the real application need not send)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/components/schemas/"), "only local schema references: %s" % ref
        return json_schema(SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]])
    unknown = set(schema) - KEYWORDS
    assert not unknown, "the contract checker does not know %s: teach it before using them" % sorted(unknown)
    out = {}
    nullable = schema.get("nullable", False)
    if "type" in schema:
        out["type"] = [schema["type"], "null"] if nullable else schema["type"]
    if "enum" in schema:
        out["enum"] = list(schema["enum"]) + ([None] if nullable else [])
    if "required" in schema:
        out["required"] = list(schema["required"])
    if "properties" in schema:
        out["properties"] = {k: json_schema(v) for k, v in schema["properties"].items()}
        out["additionalProperties"] = False
    if "items" in schema:
        out["items"] = json_schema(schema["items"])
    return out


def check(instance, schema, what):
    errors = sorted(jsonschema.Draft7Validator(json_schema(schema)).iter_errors(instance), key=str)
    assert not errors, "%s does not match docs/app-api.openapi.yml: %s (got %r)" % (
        what, "; ".join("%s at /%s" % (e.message, "/".join(map(str, e.path))) for e in errors), instance)


# --------------------------------------------------------------------------- the stand-in
def call(app, path, method, headers=None, body=None, query=None):
    url = app.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method.upper(), headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def served_routes():
    """(path, method) of every route tests/fake_app.py answers, read from its do_<METHOD> handlers:
    the string literals starting with / that a request path is compared with."""
    routes = set()
    for node in ast.walk(ast.parse(STANDIN.read_text())):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("do_"):
            for compare in (n for n in ast.walk(node) if isinstance(n, ast.Compare)):
                for const in [compare.left] + compare.comparators:
                    if isinstance(const, ast.Constant) and isinstance(const.value, str) and const.value.startswith("/"):
                        routes.add((const.value, node.name[3:].lower()))
    return routes


# --------------------------------------------------------------------------- the tests
def test_every_documented_answer_is_provoked_and_no_other():
    documented = {(path, method, str(status)) for (path, method), op in documented_operations().items()
                  for status in op["responses"]}
    missing = sorted(documented - set(SCENARIOS))
    extra = sorted(set(SCENARIOS) - documented)
    assert not missing, "documented answers no test provokes on the stand-in (add them to SCENARIOS): %s" % missing
    assert not extra, "answers the stand-in gives that docs/app-api.openapi.yml does not document: %s" % extra


def test_every_route_the_standin_serves_is_documented_and_every_documented_one_served():
    served, documented = served_routes(), set(documented_operations())
    assert served, "no route found in tests/fake_app.py (its handlers changed shape: update served_routes)"
    assert not served - documented, "the stand-in serves routes docs/app-api.openapi.yml does not document: %s" % (
        sorted(served - documented))
    assert not documented - served, "documented routes the stand-in does not serve: %s" % sorted(documented - served)


def test_undocumented_methods_and_paths_are_not_found(fake_app):
    app = fake_app()
    operations = documented_operations()
    for path in SPEC["paths"]:
        for method in ("get", "post"):
            if (path, method) not in operations:
                status = call(app, path, method, headers=ADMIN, body={} if method == "post" else None)[0]
                assert status == 404, (path, method, status)
    assert call(app, "/admin/users", "get", headers=ADMIN)[0] == 404


@pytest.mark.parametrize("path,method,status,variant", [
    (path, method, status, i) for (path, method, status), variants in sorted(SCENARIOS.items())
    for i in range(len(variants))])
def test_the_standin_answers_as_documented(fake_app, path, method, status, variant):
    scenario = SCENARIOS[(path, method, status)][variant]
    op = documented_operations()[(path, method)]
    if scenario.get("body") is not None:
        check(scenario["body"], op["requestBody"]["content"]["application/json"]["schema"], "the test's request body")
    params = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    assert set(scenario.get("query", {})) <= params, "the test asks with query parameters the document does not name"

    app = fake_app()
    for name, value in scenario.get("app", {}).items():
        assert hasattr(app, name), name
        setattr(app, name, value)
    got, ctype, raw = call(app, path, method, scenario.get("headers"), scenario.get("body"), scenario.get("query"))
    assert str(got) == status, "%s %s answered %s, expected %s: %r" % (method.upper(), path, got, status, raw[:300])

    content = {str(k): v for k, v in op["responses"].items()}[status].get("content")
    if not content:
        return  # the document names the status only
    media = ctype.split(";")[0].strip()
    assert media in content, "%s %s answered %s as %s; documented: %s" % (
        method.upper(), path, status, media, sorted(content))
    schema = content[media]["schema"]
    if media == "application/json":
        check(json.loads(raw), schema, "%s %s %s" % (method.upper(), path, status))
    else:
        check(raw.decode(), schema, "%s %s %s" % (method.upper(), path, status))
        assert raw.strip(), "%s %s answered an empty body" % (method.upper(), path)
