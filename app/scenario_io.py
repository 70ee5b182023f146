"""Scenario in, scenario out: the download button behind every result and the upload box.

A downloaded file is exactly the YAML the result was computed from, so `servesim run FILE`
reproduces the numbers on the page.
"""

from __future__ import annotations

import re

import streamlit as st

from sim.config.scenario import Scenario
from sim.engine.errors import ScenarioError

from app.simulation import scenario_from_yaml

MAX_SCENARIO_BYTES = 1_000_000  # a scenario is a page of YAML; anything bigger is a wrong file


def file_stem(name: str) -> str:
    """A file name made of the scenario's name: letters, digits, dots, dashes."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "scenario"


def download_scenario(text: str, name: str, key: str, label: str = "Download scenario") -> None:
    st.download_button(label, text, file_name=f"{file_stem(name)}.yaml",
                       mime="application/x-yaml", key=key,
                       help="The exact scenario behind these numbers; run it with "
                            "`servesim run FILE` or load it here again.")


def read_scenario_upload(upload) -> tuple[str, Scenario] | None:
    """The text and scenario of an uploaded file; shows an error and returns None if bad."""
    if upload is None:
        return None
    try:
        text = _upload_text(upload)
        return text, scenario_from_yaml(text)
    except ScenarioError as exc:
        st.error(f"{upload.name}: {exc}", icon=":material/error:")
        return None


def _upload_text(upload) -> str:
    if upload.size > MAX_SCENARIO_BYTES:
        raise ScenarioError(
            f"the file is {upload.size / 1e6:.1f} MB; a scenario file is a small YAML document "
            f"(under {MAX_SCENARIO_BYTES / 1e6:.0f} MB): check that you picked the right file"
        )
    try:
        return upload.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        raise ScenarioError(
            "the file is not UTF-8 text: upload a YAML scenario file such as those in examples/"
        ) from None
