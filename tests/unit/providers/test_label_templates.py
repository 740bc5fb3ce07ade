"""defaultRule templates, normalize and constraints expressions."""

from __future__ import annotations

import pytest

from wsgate.config.errors import ConfigError
from wsgate.providers.templates import compile_constraints, compile_template, normalize

MODEL = {"Name": "my-app", "ContainerName": "my_app.1",
         "Labels": {"a.b": "x", "env": "Prod", "tier": "web"}}


@pytest.mark.parametrize(("name", "expected"), [
    ("/my_app.1", "my-app-1"),
    ("web", "web"),
    ("--a__b--", "a-b"),
    ("svc_proj", "svc-proj"),
    ("héllo wörld", "héllo-wörld"),
    ("", ""),
])
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


@pytest.mark.parametrize(("template", "expected"), [
    ("Host(`{{ normalize .Name }}`)", "Host(`my-app`)"),
    ("Host(`{{ normalize .ContainerName }}.docker.localhost`)",
     "Host(`my-app-1.docker.localhost`)"),
    ("Host(`{{ .Name }}.{{ .Labels.tier }}.test`)", "Host(`my-app.web.test`)"),
    ('Host(`{{ index .Labels "a.b" }}.test`)', "Host(`x.test`)"),
    ("Host(`{{ index .Labels `a.b` }}`)", "Host(`x`)"),
    ("Host(`{{ .ContainerName | normalize }}`)", "Host(`my-app-1`)"),
    ('Host(`{{ lower (index .Labels "env") }}`)', "Host(`prod`)"),
    ("Host(`{{ upper .Name }}`)", "Host(`MY-APP`)"),
    ("Host(`a`)  {{- .Name -}}  !", "Host(`a`)my-app!"),
    ('Host(`{{ index .Labels "missing" }}x`)', "Host(`x`)"),
    ("Host(`{{ .Labels.missing }}`)", "Host(`<no value>`)"),
    ("PathPrefix(`/`)", "PathPrefix(`/`)"),
])
def test_template_forms(template: str, expected: str) -> None:
    assert compile_template(template).render(MODEL) == expected


@pytest.mark.parametrize(("template", "fragment"), [
    ("Host(`{{ trimPrefix \"a\" .Name }}`)", "unsupported function 'trimPrefix'"),
    ("Host(`{{ .Name", "unbalanced"),
    ("Host(`{{ }}`)", "empty action"),
    ("Host(`{{ $x := .Name }}`)", "unsupported template syntax"),
    ("Host(`{{ . }}`)", "bare dot"),
])
def test_template_errors_at_compile(template: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="defaultRule") as info:
        compile_template(template)
    assert fragment in str(info.value)


@pytest.mark.parametrize(("template", "fragment"), [
    ("Host(`{{ .Nope }}`)", "unknown field .Nope"),
    ("Host(`{{ .Labels }}`)", "prints a map"),
    ("Host(`{{ normalize .Labels }}`)", "needs text"),
    ("Host(`{{ index .Name \"x\" }}`)", "index takes a map"),
    ("Host(`{{ .Name.x }}`)", "is text"),
    ("Host(`{{ normalize .Name .Name }}`)", "takes one argument"),
])
def test_template_errors_at_render(template: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_template(template).render(MODEL)
    assert fragment in str(info.value)


LABELS = {"env": "prod", "team": "core-api", "a.b": "1"}


@pytest.mark.parametrize(("expression", "expected"), [
    ("", True),
    ("Label(`env`, `prod`)", True),
    ("Label(`env`, `dev`)", False),
    ('Label("a.b", "1")', True),
    ("!Label(`env`, `dev`)", True),
    ("Label(`env`, `prod`) && Label(`team`, `x`)", False),
    ("Label(`env`, `dev`) || LabelRegex(`team`, `^core-`)", True),
    ("LabelRegex(`team`, `api`)", True),
    ("LabelRegex(`team`, `^api`)", False),
    ("!(Label(`env`, `prod`) && LabelRegex(`team`, `core`))", False),
    ("Label(`missing`, ``)", True),
])
def test_constraints(expression: str, expected: bool) -> None:
    assert compile_constraints(expression)(LABELS) is expected


@pytest.mark.parametrize(("expression", "fragment"), [
    ("Label(`env`)", "takes two arguments"),
    ("Host(`a`)", "unknown function 'Host'"),
    ("Label(`a`, `b`) &&", "constraints"),
    ("LabelRegex(`a`, `(?=x)`)", "LabelRegex"),
])
def test_constraint_errors(expression: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_constraints(expression)
    assert fragment in str(info.value)
